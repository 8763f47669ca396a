/*
 * csi.c - the CSI driver of dmd (see csi.h): each CSI method turns into
 * the API's own methods (dots.create, dots.branch, dots.commit,
 * dots.delete, dots.delete_branch, through dm_rpc_dispatch as the admin,
 * so that a cluster forwards a commit to its branch's master exactly as it
 * forwards `dm commit`), and into mounts recorded with the dot.
 *
 * Invariants:
 *  - The KV is the one record of what the CO named: DM_KV_CSI "volumes/K"
 *    and "snapshots/K", K the first 32 hex digits of the hash of the CO's
 *    name, and "published/NODE/T" (T: the hash of the target path) for
 *    each volume this node published. A volume's record is written
 *    ("creating") before its dot or branch is made, so a retry after a
 *    crash finishes what was begun instead of making a second one.
 *  - Operations on one volume or snapshot (by its record's key, or a
 *    target path) never run at once: the second is answered ABORTED, as
 *    the spec asks (busy_enter).
 *  - A dot made for CSI volumes goes only when no volume and no snapshot
 *    of it is left (tidy): a snapshot keeps its commit reachable by
 *    keeping the branch it was taken on, even once that volume is deleted
 *    (its record then says "deleted" until the branch can go).
 *  - A volume's capacity is its branch's size limit wherever the engine
 *    enforces one (btrfs), set when the volume is made and again before
 *    each publish (limit_volume); elsewhere it is only recorded.
 */
#include "server/api/csi/csi.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "kv/kv.h"
#include "server/api/api.h"
#include "server/api/csi/csi.pb-c.h"
#include "server/api/csi/grpc.h"
#include "server/api/rpc.h"
#include "server/cluster/forward.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/names.h"
#include "util/volname.h"

#include "util/banned.h"

/* -Wcast-qual is off in this file: protobuf-c's messages hold strings as char *, which its packer
 * only reads, and its generated INIT macros cast its empty string: answers
 * point at constant strings without copying them. */
#pragma GCC diagnostic ignored "-Wcast-qual"

#define NAME_MAX_LEN 128 /* the spec's limit on a string field */
#define KEY_HEX      32
#define CALL_MS      30000
#define LONG_CALL_MS (3600 * 1000)
#define VOL_PREFIX   DM_KV_CSI "volumes/"
#define SNAP_PREFIX  DM_KV_CSI "snapshots/"
#define PUB_PREFIX   DM_KV_CSI "published/"
#define MOUNT_PREFIX "csi:"

struct dm_csi {
	const struct dm_api_env *env;
	char *dots_dir;
	struct dm_grpc_server *grpc;
	pthread_mutex_t mu;
	bool ready;  /* under mu */
	char **busy; /* under mu: keys of operations running */
	size_t nbusy;
};

/* A call's outcome: a gRPC code and why. */
struct res {
	int code;
	char msg[DM_ERR_MSG_MAX];
};

__attribute__((format(printf, 3, 4))) static int fail(struct res *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	r->code = code;
	return code;
}

static int fail_err(struct res *r, const struct dm_err *err)
{
	return fail(r, dm_grpc_code_of(err->code), "%s", err->msg);
}

/* ---- operations in flight ---- */

static bool busy_enter(struct dm_csi *c, const char *key)
{
	bool ok = true;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; ok && i < c->nbusy; i++)
		ok = strcmp(c->busy[i], key) != 0;
	if (ok) {
		c->busy = dm_xrealloc(c->busy, (c->nbusy + 1) * sizeof(*c->busy));
		c->busy[c->nbusy++] = dm_xstrdup(key);
	}
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void busy_leave(struct dm_csi *c, const char *key)
{
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->nbusy; i++) {
		if (!strcmp(c->busy[i], key)) {
			free(c->busy[i]);
			c->busy[i] = c->busy[--c->nbusy];
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

static int aborted(struct res *r, const char *what)
{
	return fail(r, DM_GRPC_ABORTED, "an operation on %s is already running; retry", what);
}

/* ---- names ---- */

/* The first KEY_HEX hex digits of the hash of s. */
static void name_key(char out[KEY_HEX + 1], const char *s)
{
	char hex[DM_OID_HEXSZ + 1];
	dm_oid h;

	dm_hash(&h, s, strlen(s));
	dm_oid_hex(hex, &h);
	memcpy(out, hex, KEY_HEX);
	out[KEY_HEX] = '\0';
}

/* A dm name part ([A-Za-z0-9_-]{1,64}) for the CO's name: the name itself
 * when it is one, else its characters with the others as '-', cut to 47,
 * and "-" and 16 hex digits of its hash. */
static void part_of(char out[DM_NAME_PART_MAX + 1], const char *name)
{
	char key[KEY_HEX + 1];
	size_t n = strlen(name), j = 0;
	bool changed = false;

	if (dm_name_part_valid(name, n)) {
		snprintf(out, DM_NAME_PART_MAX + 1, "%s", name);
		return;
	}
	for (size_t i = 0; i < n && j < 47; i++) {
		char ch = name[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';

		out[j++] = ok ? ch : '-';
		changed = changed || !ok;
	}
	(void)changed;
	name_key(key, name);
	snprintf(out + j, DM_NAME_PART_MAX + 1 - j, "-%.16s", key);
}

/* ---- the API, in-process ---- */

/* Calls an API method as the admin; params is taken. */
static int rpc(struct dm_csi *c, const char *method, json_t *params, json_t **result,
	       struct dm_err *err)
{
	struct dm_caller admin;
	json_t *req = json_pack("{s:s, s:s, s:o, s:i}", "jsonrpc", "2.0", "method", method,
				"params", params, "id", 1);
	json_t *reply = NULL, *e;
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	char *out;
	int status = 0, rc = 0;

	json_decref(req);
	if (!body)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	memset(&admin, 0, sizeof(admin));
	snprintf(admin.user, sizeof(admin.user), "admin");
	admin.admin = true;
	out = dm_rpc_dispatch(c->env, &admin, body, strlen(body), &status);
	free(body);
	if (out)
		reply = json_loads(out, 0, NULL);
	free(out);
	e = json_object_get(reply, "error");
	if (!reply) {
		rc = dm_err_set(err, DM_EINTERNAL, "%s: no answer", method);
	} else if (e) {
		const char *m = json_string_value(json_object_get(e, "message"));
		const char *code =
			json_string_value(json_object_get(json_object_get(e, "data"), "code"));

		rc = dm_err_set(err, code ? dm_err_from_json_name(code) : DM_EINTERNAL, "%s",
				m ? m : method);
	} else if (result) {
		*result = json_incref(json_object_get(reply, "result"));
	}
	json_decref(reply);
	return rc;
}

/* The dot with id: a new handle reference, or NULL. */
static struct dm_dot_handle *dot_by_id(struct dm_csi *c, const char *id)
{
	return dm_registry_handle_of(c->env->registry, id);
}

/* "ns/name" of dot id into out; false when this node has no such dot. */
static bool dot_shown(struct dm_csi *c, const char *id, char out[DM_DOT_NAME_TEXT_MAX])
{
	struct dm_dot_handle *h = dot_by_id(c, id);
	struct dm_dot_view *v;
	bool ok;

	if (!h)
		return false;
	v = dm_dot_handle_view(h);
	ok = v->state == DM_DOT_READY;
	snprintf(out, DM_DOT_NAME_TEXT_MAX, "%s/%s", v->name.ns, v->name.name);
	dm_dot_view_unref(v);
	dm_dot_handle_unref(h);
	return ok;
}

/* ---- records ---- */

static int rec_get(struct dm_csi *c, json_t **out, const char *prefix, const char *key,
		   struct dm_err *err)
{
	char k[256];
	struct dm_kv_kv kv;
	int rc;

	snprintf(k, sizeof(k), "%s%s", prefix, key);
	dm_kv_kv_init(&kv);
	rc = dm_kv_get(c->env->kv, &kv, k, err);
	*out = NULL;
	if (!rc) {
		*out = json_loadb(kv.value, kv.value_len, 0, NULL);
		if (!json_is_object(*out)) {
			json_decref(*out);
			*out = NULL;
			rc = dm_err_set(err, DM_ECORRUPT, "corrupt CSI record '%s'", k);
		}
	}
	dm_kv_kv_release(&kv);
	return rc;
}

static int rec_put(struct dm_csi *c, const char *prefix, const char *key, json_t *rec,
		   struct dm_err *err)
{
	char k[256];
	char *s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	int rc;

	if (!s)
		return dm_err_set(err, DM_ENOMEM, "out of memory");
	snprintf(k, sizeof(k), "%s%s", prefix, key);
	rc = dm_kv_put(c->env->kv, NULL, k, s, strlen(s), 0, err);
	free(s);
	return rc;
}

static int rec_del(struct dm_csi *c, const char *prefix, const char *key, struct dm_err *err)
{
	char k[256];
	int rc;

	snprintf(k, sizeof(k), "%s%s", prefix, key);
	rc = dm_kv_delete(c->env->kv, NULL, k, err);
	return rc == DM_ENOTFOUND ? 0 : rc;
}

static const char *str(json_t *rec, const char *field)
{
	const char *s = json_string_value(json_object_get(rec, field));

	return s ? s : "";
}

/* Every record under prefix, as a JSON object key -> record (keys sorted). */
static int rec_all(struct dm_csi *c, json_t **out, const char *prefix, struct dm_err *err)
{
	struct dm_kv_kvs l;
	int rc = dm_kv_range(c->env->kv, &l, prefix, 0, err);

	*out = NULL;
	if (rc)
		return rc;
	*out = json_object();
	for (size_t i = 0; i < l.len; i++) {
		json_t *j = json_loadb(l.items[i].value, l.items[i].value_len, 0, NULL);

		if (json_is_object(j))
			json_object_set_new(*out, l.items[i].key + strlen(prefix), j);
		else
			json_decref(j);
	}
	dm_kv_kvs_release(&l);
	return 0;
}

/* The record under prefix whose field is value: a new reference with its
 * key into key_out, or NULL. */
static json_t *rec_find(struct dm_csi *c, const char *prefix, const char *field, const char *value,
			char key_out[KEY_HEX + 1], struct dm_err *err, int *rc)
{
	json_t *all = NULL, *rec, *found = NULL;
	const char *k;

	*rc = rec_all(c, &all, prefix, err);
	json_object_foreach(all, k, rec)
	{
		if (!found && !strcmp(str(rec, field), value)) {
			found = json_incref(rec);
			if (key_out)
				snprintf(key_out, KEY_HEX + 1, "%s", k);
		}
	}
	json_decref(all);
	return found;
}

/* ---- capabilities ---- */

static bool mode_supported(int mode)
{
	return mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_WRITER ||
	       mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY ||
	       mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER ||
	       mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_MULTI_WRITER;
}

/* Why dm cannot serve capability cap, or NULL when it can. */
static const char *cap_refused(const Csi__V1__VolumeCapability *cap)
{
	if (cap->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK)
		return "dm serves file system (mount) volumes, not block volumes";
	if (cap->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT)
		return "a volume capability needs an access type (mount)";
	if (!cap->access_mode)
		return "a volume capability needs an access mode";
	if (!mode_supported(cap->access_mode->mode))
		return "dm volumes are used on one node at a time (SINGLE_NODE_* access modes)";
	return NULL;
}

static int check_caps(Csi__V1__VolumeCapability **caps, size_t n, struct res *r)
{
	if (!n)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "volume capabilities are missing");
	for (size_t i = 0; i < n; i++) {
		const char *why = cap_refused(caps[i]);

		if (why)
			return fail(r, DM_GRPC_INVALID_ARGUMENT, "%s", why);
	}
	return 0;
}

/* ---- packing ---- */

static int pack(struct dm_buf *out, const void *msg)
{
	const ProtobufCMessage *m = msg;
	size_t n = protobuf_c_message_get_packed_size(m);

	if (dm_buf_grow(out, n ? n : 1))
		return DM_GRPC_RESOURCE_EXHAUSTED;
	out->len = protobuf_c_message_pack(m, out->data);
	return DM_GRPC_OK;
}

/* ---- Identity ---- */

static int m_plugin_info(struct dm_csi *c, const void *req, struct dm_buf *out, struct res *r)
{
	Csi__V1__GetPluginInfoResponse resp = CSI__V1__GET_PLUGIN_INFO_RESPONSE__INIT;
	Csi__V1__GetPluginInfoResponse__ManifestEntry node =
		CSI__V1__GET_PLUGIN_INFO_RESPONSE__MANIFEST_ENTRY__INIT;
	Csi__V1__GetPluginInfoResponse__ManifestEntry *m[] = {&node};

	(void)req;
	(void)r;
	resp.name = (char *)DM_CSI_DRIVER_NAME;
	resp.vendor_version = (char *)DM_VERSION;
	node.key = (char *)"node";
	node.value = (char *)(c->env->node_id ? c->env->node_id : "");
	resp.n_manifest = 1;
	resp.manifest = m;
	return pack(out, &resp);
}

static int m_plugin_caps(struct dm_csi *c, const void *req, struct dm_buf *out, struct res *r)
{
	Csi__V1__GetPluginCapabilitiesResponse resp =
		CSI__V1__GET_PLUGIN_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__PluginCapability cap[2] = {CSI__V1__PLUGIN_CAPABILITY__INIT,
					    CSI__V1__PLUGIN_CAPABILITY__INIT};
	Csi__V1__PluginCapability__Service svc[2] = {CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT,
						     CSI__V1__PLUGIN_CAPABILITY__SERVICE__INIT};
	Csi__V1__PluginCapability *caps[2] = {&cap[0], &cap[1]};

	(void)req;
	(void)r;
	for (int i = 0; i < 2; i++) {
		cap[i].type_case = CSI__V1__PLUGIN_CAPABILITY__TYPE_SERVICE;
		cap[i].service = &svc[i];
	}
	svc[0].type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__CONTROLLER_SERVICE;
	svc[1].type = CSI__V1__PLUGIN_CAPABILITY__SERVICE__TYPE__VOLUME_ACCESSIBILITY_CONSTRAINTS;
	resp.capabilities = caps;
	resp.n_capabilities = c->env->kv_root && c->env->kv_root[0] ? 2 : 1;
	return pack(out, &resp);
}

static int m_probe(struct dm_csi *c, const void *req, struct dm_buf *out, struct res *r)
{
	Csi__V1__ProbeResponse resp = CSI__V1__PROBE_RESPONSE__INIT;
	Google__Protobuf__BoolValue ready = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;

	(void)req;
	(void)r;
	pthread_mutex_lock(&c->mu);
	ready.value = c->ready;
	pthread_mutex_unlock(&c->mu);
	resp.ready = &ready;
	return pack(out, &resp);
}

/* ---- volumes ---- */

/* A volume's answer: id, capacity, context and source from its record. */
struct vol_msg {
	Csi__V1__Volume v;
	Csi__V1__Volume__VolumeContextEntry ctx[2];
	Csi__V1__Volume__VolumeContextEntry *ctxp[2];
	Csi__V1__VolumeContentSource src;
	Csi__V1__VolumeContentSource__SnapshotSource snap;
	Csi__V1__VolumeContentSource__VolumeSource vol;
};

static void vol_msg_fill(struct vol_msg *m, json_t *rec)
{
	const char *source = str(rec, "source");

	csi__v1__volume__init(&m->v);
	m->v.volume_id = (char *)str(rec, "id");
	m->v.capacity_bytes = (int64_t)json_integer_value(json_object_get(rec, "capacity"));
	for (int i = 0; i < 2; i++) {
		csi__v1__volume__volume_context_entry__init(&m->ctx[i]);
		m->ctxp[i] = &m->ctx[i];
	}
	m->ctx[0].key = (char *)"dot";
	m->ctx[0].value = (char *)str(rec, "dot");
	m->ctx[1].key = (char *)"branch";
	m->ctx[1].value = (char *)str(rec, "branch");
	m->v.n_volume_context = 2;
	m->v.volume_context = m->ctxp;
	csi__v1__volume_content_source__init(&m->src);
	csi__v1__volume_content_source__snapshot_source__init(&m->snap);
	csi__v1__volume_content_source__volume_source__init(&m->vol);
	if (!strncmp(source, "snapshot:", 9)) {
		m->snap.snapshot_id = (char *)source + 9;
		m->src.type_case = CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_SNAPSHOT;
		m->src.snapshot = &m->snap;
		m->v.content_source = &m->src;
	} else if (!strncmp(source, "volume:", 7)) {
		m->vol.volume_id = (char *)source + 7;
		m->src.type_case = CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_VOLUME;
		m->src.volume = &m->vol;
		m->v.content_source = &m->src;
	}
}

/* Does the volume of rec exist here: its dot, with its branch? */
static bool volume_here(struct dm_csi *c, json_t *rec)
{
	struct dm_dot_handle *h = dot_by_id(c, str(rec, "dot_id"));
	struct dm_dot_view *v;
	bool ok;

	if (!h)
		return false;
	v = dm_dot_handle_view(h);
	ok = v->state == DM_DOT_READY && dm_dot_view_branch(v, str(rec, "branch"));
	dm_dot_view_unref(v);
	dm_dot_handle_unref(h);
	return ok;
}

/* The live volume record of volume_id, or NULL (NOT_FOUND in r). */
static json_t *find_volume(struct dm_csi *c, const char *volume_id, char key[KEY_HEX + 1],
			   struct res *r)
{
	struct dm_err err;
	int rc;
	json_t *rec = rec_find(c, VOL_PREFIX, "id", volume_id, key, &err, &rc);

	if (rc) {
		fail_err(r, &err);
		return NULL;
	}
	if (rec && strcmp(str(rec, "state"), "ready")) {
		json_decref(rec);
		rec = NULL;
	}
	if (!rec)
		fail(r, DM_GRPC_NOT_FOUND, "no volume '%s'", volume_id);
	return rec;
}

/* The parameters dm takes from a StorageClass; Kubernetes' own
 * (csi.storage.k8s.io/...) are passed by and ignored. */
static int params_of(json_t **out, Csi__V1__CreateVolumeRequest__ParametersEntry **p, size_t n,
		     struct res *r)
{
	static const char *const known[] = {"namespace", "fromDot", "fromCommit"};

	*out = json_object();
	for (size_t i = 0; i < n; i++) {
		bool ok = !strncmp(p[i]->key, "csi.storage.k8s.io/", 19);

		for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
			ok = ok || !strcmp(p[i]->key, known[j]);
		if (!ok) {
			json_decref(*out);
			*out = NULL;
			return fail(r, DM_GRPC_INVALID_ARGUMENT,
				    "unknown parameter '%s'; dm takes namespace, fromDot and "
				    "fromCommit",
				    p[i]->key);
		}
		if (strncmp(p[i]->key, "csi.storage.k8s.io/", 19))
			json_object_set_new(*out, p[i]->key, json_string(p[i]->value));
	}
	return 0;
}

/* What a new volume is made from: dot_id and commit, with source the
 * answer's content source ("snapshot:ID", "volume:ID" or ""). */
struct origin {
	char dot_id[DM_DOT_ID_MAX + 1]; /* "": a new dot */
	char commit[DM_COMMIT_ID_LEN_MAX + 1];
	char clone_of[KEY_HEX + 1]; /* a volume to commit first (a clone) */
	char source[NAME_MAX_LEN + 32];
};

static int origin_of(struct dm_csi *c, struct origin *o, const Csi__V1__CreateVolumeRequest *req,
		     json_t *params, struct res *r)
{
	const Csi__V1__VolumeContentSource *src = req->volume_content_source;
	const char *from_dot = str(params, "fromDot"), *from_commit = str(params, "fromCommit");
	struct dm_err err;
	json_t *rec;
	int rc;

	memset(o, 0, sizeof(*o));
	if (src && src->type_case == CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_SNAPSHOT) {
		const char *id = src->snapshot && src->snapshot->snapshot_id
					 ? src->snapshot->snapshot_id
					 : "";

		if (!id[0])
			return fail(r, DM_GRPC_INVALID_ARGUMENT, "the source snapshot has no id");
		rec = rec_find(c, SNAP_PREFIX, "id", id, NULL, &err, &rc);
		if (rc)
			return fail_err(r, &err);
		if (!rec || !dot_shown(c, str(rec, "dot_id"), (char[DM_DOT_NAME_TEXT_MAX]){0})) {
			json_decref(rec);
			return fail(r, DM_GRPC_NOT_FOUND, "no snapshot '%s'", id);
		}
		snprintf(o->dot_id, sizeof(o->dot_id), "%s", str(rec, "dot_id"));
		snprintf(o->commit, sizeof(o->commit), "%s", str(rec, "commit"));
		snprintf(o->source, sizeof(o->source), "snapshot:%s", id);
		json_decref(rec);
		return 0;
	}
	if (src && src->type_case == CSI__V1__VOLUME_CONTENT_SOURCE__TYPE_VOLUME) {
		const char *id =
			src->volume && src->volume->volume_id ? src->volume->volume_id : "";

		if (!id[0])
			return fail(r, DM_GRPC_INVALID_ARGUMENT, "the source volume has no id");
		rec = find_volume(c, id, o->clone_of, r);
		if (!rec)
			return r->code;
		snprintf(o->dot_id, sizeof(o->dot_id), "%s", str(rec, "dot_id"));
		snprintf(o->source, sizeof(o->source), "volume:%s", id);
		json_decref(rec);
		return 0;
	}
	if (src && src->type_case != CSI__V1__VOLUME_CONTENT_SOURCE__TYPE__NOT_SET)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "unknown kind of volume content source");
	if (from_commit[0] && !from_dot[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "parameter fromCommit needs fromDot");
	if (from_dot[0]) {
		struct dm_registry_snap *snap;
		const struct dm_registry_entry *e;
		struct dm_dot_name dn;
		struct dm_ref ref;

		if (dm_dot_name_parse(&dn, from_dot, &err))
			return fail_err(r, &err);
		if (from_commit[0] && dm_ref_parse(&ref, from_commit, &err))
			return fail_err(r, &err);
		snap = dm_registry_snapshot(c->env->registry);
		e = dm_registry_find(snap, &dn);
		if (e) {
			struct dm_dot_view *v = dm_dot_handle_view(e->dot);
			const struct dm_branch_view *b = dm_dot_view_branch(v, v->current);

			snprintf(o->dot_id, sizeof(o->dot_id), "%s", v->id);
			snprintf(o->commit, sizeof(o->commit), "%s",
				 from_commit[0] ? from_commit
				 : b            ? b->head
						: "");
			dm_dot_view_unref(v);
		}
		dm_registry_snap_unref(snap);
		if (!o->dot_id[0])
			return fail(r, DM_GRPC_NOT_FOUND, "parameter fromDot: no dot '%s'",
				    from_dot);
		if (!o->commit[0])
			return fail(r, DM_GRPC_FAILED_PRECONDITION,
				    "parameter fromDot: dot '%s' has no commit yet", from_dot);
	}
	return 0;
}

static bool same_params(json_t *a, json_t *b)
{
	return json_equal(a ? a : json_object(), b ? b : json_object()) ||
	       (!json_object_size(a) && !json_object_size(b));
}

/* Makes what rec says (its state "creating"): a dot, or a branch of one. */
static int make_volume(struct dm_csi *c, json_t *rec, const struct origin *o, const char *name,
		       struct res *r)
{
	char shown[DM_DOT_NAME_TEXT_MAX], commit[DM_COMMIT_ID_LEN_MAX + 1];
	struct dm_err err;
	json_t *res = NULL;
	int rc;

	if (!o->dot_id[0]) {
		rc = rpc(c, "dots.create", json_pack("{s:s}", "dot", str(rec, "dot")), &res, &err);
		if (rc == DM_EEXISTS) {
			/* ours when a retry finds it: the record names its id */
			char id[DM_DOT_ID_MAX + 1];

			if (!str(rec, "dot_id")[0] || !dot_shown(c, str(rec, "dot_id"), shown))
				return fail(r, DM_GRPC_ALREADY_EXISTS,
					    "dot '%s' exists and is not a CSI volume",
					    str(rec, "dot"));
			snprintf(id, sizeof(id), "%s", str(rec, "dot_id"));
			rc = 0;
		} else if (!rc) {
			const char *id = str(res, "id");
			char vid[DM_DOT_ID_MAX + 80];

			json_object_set_new(rec, "dot_id", json_string(id));
			json_object_set_new(rec, "made_dot", json_true());
			snprintf(vid, sizeof(vid), "%s:%s", id, "master");
			json_object_set_new(rec, "id", json_string(vid));
		}
		json_decref(res);
		return rc ? fail_err(r, &err) : 0;
	}
	if (!dot_shown(c, o->dot_id, shown))
		return fail(r, DM_GRPC_NOT_FOUND, "the source's dot is gone");
	snprintf(commit, sizeof(commit), "%s", o->commit);
	if (o->clone_of[0]) {
		/* a clone: the source as it is now, as a commit of its branch */
		json_t *src = NULL;

		rc = rec_get(c, &src, VOL_PREFIX, o->clone_of, &err);
		if (!rc)
			rc = rpc(c, "dots.commit",
				 json_pack("{s:s, s:s, s:s, s:{s:s}}", "dot", shown, "branch",
					   str(src, "branch"), "message", "csi: clone source",
					   "metadata", "csi.clone", name),
				 &res, &err);
		json_decref(src);
		if (rc)
			return fail_err(r, &err);
		snprintf(commit, sizeof(commit), "%s", str(res, "id"));
		json_decref(res);
		res = NULL;
	}
	if (!commit[0])
		return fail(r, DM_GRPC_FAILED_PRECONDITION,
			    "the source has no commit to start from");
	rc = rpc(c, "dots.branch",
		 json_pack("{s:s, s:s, s:s}", "dot", shown, "branch", str(rec, "branch"), "from",
			   commit),
		 &res, &err);
	json_decref(res);
	if (rc == DM_EEXISTS && !strcmp(str(rec, "state"), "creating"))
		rc = 0; /* a retry: made before */
	return rc ? fail_err(r, &err) : 0;
}

static int limit_volume(struct dm_csi *c, json_t *rec, struct dm_err *err);

static int m_create_volume(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__CreateVolumeRequest *req = rq;
	Csi__V1__CreateVolumeResponse resp = CSI__V1__CREATE_VOLUME_RESPONSE__INIT;
	struct vol_msg vm;
	char key[KEY_HEX + 1], part[DM_NAME_PART_MAX + 1], busy[KEY_HEX + 8];
	struct origin o;
	struct dm_err err;
	json_t *params = NULL, *rec = NULL;
	int64_t cap = 0;
	int rc;

	if (!req->name || !req->name[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume has no name");
	if (strlen(req->name) > NAME_MAX_LEN)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "a volume name has at most %d bytes",
			    NAME_MAX_LEN);
	if (check_caps(req->volume_capabilities, req->n_volume_capabilities, r))
		return r->code;
	if (req->capacity_range) {
		int64_t need = req->capacity_range->required_bytes;
		int64_t limit = req->capacity_range->limit_bytes;

		if (need < 0 || limit < 0 || (limit && need > limit))
			return fail(r, DM_GRPC_OUT_OF_RANGE,
				    "invalid capacity range (required %lld, limit %lld)",
				    (long long)need, (long long)limit);
		cap = need ? need : limit;
	}
	if (params_of(&params, req->parameters, req->n_parameters, r))
		return r->code;
	name_key(key, req->name);
	snprintf(busy, sizeof(busy), "v:%s", key);
	if (!busy_enter(c, busy)) {
		json_decref(params);
		return aborted(r, "this volume");
	}
	rc = rec_get(c, &rec, VOL_PREFIX, key, &err);
	if (rc && rc != DM_ENOTFOUND) {
		fail_err(r, &err);
		goto done;
	}
	if (rec && !strcmp(str(rec, "state"), "deleted")) {
		fail(r, DM_GRPC_ALREADY_EXISTS,
		     "volume '%s' was deleted and its dot is kept for its snapshots; use another "
		     "name",
		     req->name);
		goto done;
	}
	if (origin_of(c, &o, req, params, r))
		goto done;
	if (rec) {
		/* the same name again: the same volume, if asked the same */
		if ((int64_t)json_integer_value(json_object_get(rec, "capacity")) != cap ||
		    !same_params(json_object_get(rec, "params"), params) ||
		    strcmp(str(rec, "source"), o.source)) {
			fail(r, DM_GRPC_ALREADY_EXISTS,
			     "volume '%s' exists with another capacity, source or parameters",
			     req->name);
			goto done;
		}
	} else {
		const char *ns = str(params, "namespace");
		struct dm_dot_name dn;
		char dot[DM_DOT_NAME_TEXT_MAX];

		part_of(part, req->name);
		if (ns[0] && !dm_name_part_valid(ns, strlen(ns))) {
			fail(r, DM_GRPC_INVALID_ARGUMENT, "invalid namespace '%s'", ns);
			goto done;
		}
		rec = json_pack("{s:s, s:s, s:s, s:I, s:O, s:s, s:I}", "name", req->name, "state",
				"creating", "source", o.source, "capacity", (json_int_t)cap,
				"params", params, "branch", o.dot_id[0] ? part : "master",
				"time_ns", (json_int_t)time(NULL) * 1000000000);
		if (o.dot_id[0]) {
			char vid[DM_DOT_ID_MAX + DM_NAME_PART_MAX + 2];

			if (!dot_shown(c, o.dot_id, dot)) {
				fail(r, DM_GRPC_NOT_FOUND, "the source's dot is gone");
				goto done;
			}
			snprintf(vid, sizeof(vid), "%s:%s", o.dot_id, part);
			json_object_set_new(rec, "dot_id", json_string(o.dot_id));
			json_object_set_new(rec, "id", json_string(vid));
		} else {
			snprintf(dot, sizeof(dot), "%s/%s", ns[0] ? ns : DM_DEFAULT_NAMESPACE,
				 part);
			if (dm_dot_name_parse(&dn, dot, &err)) {
				fail_err(r, &err);
				goto done;
			}
		}
		json_object_set_new(rec, "dot", json_string(dot));
		if (rec_put(c, VOL_PREFIX, key, rec, &err)) {
			fail_err(r, &err);
			goto done;
		}
	}
	if (!strcmp(str(rec, "state"), "creating")) {
		if (make_volume(c, rec, &o, req->name, r))
			goto done;
		if (limit_volume(c, rec, &err)) {
			fail_err(r, &err);
			goto done;
		}
		json_object_set_new(rec, "state", json_string("ready"));
		if (rec_put(c, VOL_PREFIX, key, rec, &err)) {
			fail_err(r, &err);
			goto done;
		}
		dm_info("csi: volume '%s' is %s (%s@%s)", req->name, str(rec, "id"),
			str(rec, "dot"), str(rec, "branch"));
	}
	vol_msg_fill(&vm, rec);
	resp.volume = &vm.v;
	r->code = pack(out, &resp);
done:
	busy_leave(c, busy);
	json_decref(rec);
	json_decref(params);
	return r->code;
}

/* Published volume volume_id anywhere? The first target, into where. */
static bool published(struct dm_csi *c, const char *volume_id, char *where, size_t size)
{
	struct dm_err err;
	json_t *all = NULL, *rec;
	const char *k;
	bool found = false;

	if (rec_all(c, &all, PUB_PREFIX, &err))
		return false;
	json_object_foreach(all, k, rec)
	{
		if (!found && !strcmp(str(rec, "volume"), volume_id)) {
			found = true;
			snprintf(where, size, "%s on node %s", str(rec, "target"),
				 str(rec, "node"));
		}
	}
	json_decref(all);
	return found;
}

/*
 * What of dot dot_id may go now: a branch no live volume and no snapshot
 * needs (its record goes with it), and the dot itself once nothing of it
 * is left, if CSI made it (a record says made_dot: a dot of the
 * StorageClass's fromDot only lends its history, and stays).
 */
static void tidy(struct dm_csi *c, const char *dot_id)
{
	char shown[DM_DOT_NAME_TEXT_MAX], current[DM_NAME_PART_MAX + 1] = "";
	struct dm_err err;
	json_t *vols = NULL, *snaps = NULL, *rec, *res = NULL;
	const char *k;
	bool live = false, any_snap = false, ours = false;
	struct dm_dot_handle *h;

	if (rec_all(c, &vols, VOL_PREFIX, &err) || rec_all(c, &snaps, SNAP_PREFIX, &err)) {
		dm_warn("csi: cannot read the records: %s", err.msg);
		goto done;
	}
	json_object_foreach(vols, k, rec)
	{
		if (!strcmp(str(rec, "dot_id"), dot_id) && strcmp(str(rec, "state"), "deleted"))
			live = true;
		if (!strcmp(str(rec, "dot_id"), dot_id) &&
		    json_is_true(json_object_get(rec, "made_dot")))
			ours = true;
	}
	json_object_foreach(snaps, k, rec)
	{
		if (!strcmp(str(rec, "dot_id"), dot_id))
			any_snap = true;
	}
	h = dot_by_id(c, dot_id);
	if (h) {
		struct dm_dot_view *v = dm_dot_handle_view(h);

		snprintf(current, sizeof(current), "%s", v->current);
		dm_dot_view_unref(v);
		dm_dot_handle_unref(h);
	}
	if (!live && !any_snap && ours) {
		if (h && rpc(c, "dots.delete", json_pack("{s:s}", "id", dot_id), &res, &err)) {
			dm_warn("csi: cannot delete dot %s: %s", dot_id, err.msg);
			goto done;
		}
		json_decref(res);
		res = NULL;
		json_object_foreach(vols, k, rec)
		{
			if (!strcmp(str(rec, "dot_id"), dot_id) && rec_del(c, VOL_PREFIX, k, &err))
				dm_warn("csi: %s", err.msg);
		}
		if (h)
			dm_info("csi: deleted dot %s: no volume or snapshot of it is left", dot_id);
		goto done;
	}
	if (!h || !dot_shown(c, dot_id, shown))
		goto done;
	json_object_foreach(vols, k, rec)
	{
		const char *branch = str(rec, "branch");
		bool needed = !strcmp(branch, current);
		json_t *s;
		const char *sk;

		if (strcmp(str(rec, "dot_id"), dot_id) || strcmp(str(rec, "state"), "deleted"))
			continue;
		json_object_foreach(snaps, sk, s)
		{
			needed = needed || (!strcmp(str(s, "dot_id"), dot_id) &&
					    !strcmp(str(s, "branch"), branch));
		}
		if (needed || (c->env->kv_root && c->env->kv_root[0]))
			continue; /* kept; in a cluster branches are not deleted yet */
		if (rpc(c, "dots.delete_branch",
			json_pack("{s:s, s:s, s:b}", "dot", shown, "branch", branch, "force", 1),
			&res, &err) &&
		    err.code != DM_ENOTFOUND) {
			dm_warn("csi: cannot delete branch '%s' of '%s': %s", branch, shown,
				err.msg);
			continue;
		}
		json_decref(res);
		res = NULL;
		if (rec_del(c, VOL_PREFIX, k, &err))
			dm_warn("csi: %s", err.msg);
	}
done:
	json_decref(res);
	json_decref(vols);
	json_decref(snaps);
}

static int m_delete_volume(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__DeleteVolumeRequest *req = rq;
	Csi__V1__DeleteVolumeResponse resp = CSI__V1__DELETE_VOLUME_RESPONSE__INIT;
	char key[KEY_HEX + 1], busy[KEY_HEX + 8], where[PATH_MAX + 128];
	char dot_id[DM_DOT_ID_MAX + 1];
	struct dm_err err;
	json_t *rec;
	int rc;

	if (!req->volume_id || !req->volume_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume id is missing");
	rec = rec_find(c, VOL_PREFIX, "id", req->volume_id, key, &err, &rc);
	if (rc)
		return fail_err(r, &err);
	if (!rec || !strcmp(str(rec, "state"), "deleted")) {
		json_decref(rec);
		return pack(out, &resp); /* gone already: success, as the spec says */
	}
	snprintf(busy, sizeof(busy), "v:%s", key);
	if (!busy_enter(c, busy)) {
		json_decref(rec);
		return aborted(r, "this volume");
	}
	if (published(c, req->volume_id, where, sizeof(where))) {
		fail(r, DM_GRPC_FAILED_PRECONDITION, "volume '%s' is published at %s",
		     req->volume_id, where);
		goto done;
	}
	{
		struct dm_dot_handle *h = dot_by_id(c, str(rec, "dot_id"));

		if (h) {
			struct dm_dot_view *v = dm_dot_handle_view(h);

			for (size_t i = 0; !r->code && i < v->nmounts; i++)
				if (!strcmp(v->mounts[i].branch, str(rec, "branch")) ||
				    (!v->mounts[i].branch[0] &&
				     !strcmp(v->current, str(rec, "branch"))))
					fail(r, DM_GRPC_FAILED_PRECONDITION,
					     "volume '%s' is in use by %s", req->volume_id,
					     v->mounts[i].container);
			dm_dot_view_unref(v);
			dm_dot_handle_unref(h);
		}
		if (r->code)
			goto done;
	}
	json_object_set_new(rec, "state", json_string("deleted"));
	if (rec_put(c, VOL_PREFIX, key, rec, &err)) {
		fail_err(r, &err);
		goto done;
	}
	snprintf(dot_id, sizeof(dot_id), "%s", str(rec, "dot_id"));
	dm_info("csi: volume %s deleted", req->volume_id);
	tidy(c, dot_id);
	r->code = pack(out, &resp);
done:
	busy_leave(c, busy);
	json_decref(rec);
	return r->code;
}

static int m_validate(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__ValidateVolumeCapabilitiesRequest *req = rq;
	Csi__V1__ValidateVolumeCapabilitiesResponse resp =
		CSI__V1__VALIDATE_VOLUME_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__ValidateVolumeCapabilitiesResponse__Confirmed ok =
		CSI__V1__VALIDATE_VOLUME_CAPABILITIES_RESPONSE__CONFIRMED__INIT;
	const char *why = NULL;
	char key[KEY_HEX + 1];
	json_t *rec;

	if (!req->volume_id || !req->volume_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume id is missing");
	if (!req->n_volume_capabilities)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "volume capabilities are missing");
	rec = find_volume(c, req->volume_id, key, r);
	if (!rec)
		return r->code;
	json_decref(rec);
	for (size_t i = 0; !why && i < req->n_volume_capabilities; i++)
		why = cap_refused(req->volume_capabilities[i]);
	if (why) {
		resp.message = (char *)why;
	} else {
		ok.n_volume_capabilities = req->n_volume_capabilities;
		ok.volume_capabilities = req->volume_capabilities;
		resp.confirmed = &ok;
	}
	return pack(out, &resp);
}

/* A page of keys after token: first index into keys (sorted), or -1 for
 * an invalid token. */
static int page_start(json_t *keys, const char *token)
{
	size_t i;
	json_t *k;

	if (!token || !token[0])
		return 0;
	if (strlen(token) != KEY_HEX || strspn(token, "0123456789abcdef") != KEY_HEX)
		return -1;
	json_array_foreach(keys, i, k)
	{
		if (strcmp(json_string_value(k), token) > 0)
			return (int)i;
	}
	return (int)json_array_size(keys);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a),
		      json_string_value(*(json_t *const *)b));
}

/* obj's keys as a sorted array of strings. */
static json_t *sorted_keys(json_t *obj)
{
	size_t n = json_object_size(obj), i = 0;
	json_t **v = dm_xcalloc(n ? n : 1, sizeof(*v)), *keys = json_array(), *x;
	const char *k;

	json_object_foreach(obj, k, x)
	{
		(void)x;
		v[i++] = json_string(k);
	}
	qsort(v, i, sizeof(*v), cmp_str);
	for (size_t j = 0; j < i; j++)
		json_array_append_new(keys, v[j]);
	free(v);
	return keys;
}

/* One page of a listing (ListVolumes, ListSnapshots): the records under a
 * prefix, in key order, from the key after the request's token on, at
 * most max of them; next is the last key taken, the token of the next
 * page when more follow. */
struct page {
	json_t *all, *keys;
	size_t start, max, n;
	bool more;
	char next[KEY_HEX + 1];
};

static void page_close(struct page *pg)
{
	json_decref(pg->keys);
	json_decref(pg->all);
}

/* Reads the records under prefix and checks the request's paging; 0, or
 * r's code (nothing to close then). */
static int page_open(struct dm_csi *c, struct page *pg, const char *prefix, int32_t max_entries,
		     const char *token, struct res *r)
{
	struct dm_err err;
	int start;

	memset(pg, 0, sizeof(*pg));
	if (max_entries < 0)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "max_entries must not be negative");
	if (rec_all(c, &pg->all, prefix, &err))
		return fail_err(r, &err);
	pg->keys = sorted_keys(pg->all);
	start = page_start(pg->keys, token);
	if (start < 0) {
		page_close(pg);
		return fail(r, DM_GRPC_ABORTED, "invalid starting token '%s'", token);
	}
	pg->start = (size_t)start;
	pg->max = max_entries ? (size_t)max_entries : SIZE_MAX;
	return 0;
}

/* Takes key, whose record the listing wants, as entry pg->n - 1; false
 * (and more follow) once the page is full. */
static bool page_take(struct page *pg, json_t *key)
{
	if (pg->n == pg->max) {
		pg->more = true;
		return false;
	}
	snprintf(pg->next, sizeof(pg->next), "%s", json_string_value(key));
	pg->n++;
	return true;
}

static int m_list_volumes(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__ListVolumesRequest *req = rq;
	Csi__V1__ListVolumesResponse resp = CSI__V1__LIST_VOLUMES_RESPONSE__INIT;
	Csi__V1__ListVolumesResponse__Entry *entries, **ep;
	struct vol_msg *vms;
	struct page pg;
	json_t *k;
	size_t i;

	if (page_open(c, &pg, VOL_PREFIX, req->max_entries, req->starting_token, r))
		return r->code;
	entries = dm_xcalloc(json_array_size(pg.keys) + 1, sizeof(*entries));
	ep = dm_xcalloc(json_array_size(pg.keys) + 1, sizeof(*ep));
	vms = dm_xcalloc(json_array_size(pg.keys) + 1, sizeof(*vms));
	json_array_foreach(pg.keys, i, k)
	{
		json_t *rec = json_object_get(pg.all, json_string_value(k));
		size_t n = pg.n;

		if (i < pg.start || strcmp(str(rec, "state"), "ready"))
			continue;
		if (!page_take(&pg, k))
			break;
		csi__v1__list_volumes_response__entry__init(&entries[n]);
		vol_msg_fill(&vms[n], rec);
		entries[n].volume = &vms[n].v;
		ep[n] = &entries[n];
	}
	resp.next_token = pg.more ? pg.next : (char *)"";
	resp.n_entries = pg.n;
	resp.entries = ep;
	r->code = pack(out, &resp);
	free(entries);
	free(ep);
	free(vms);
	page_close(&pg);
	return r->code;
}

static int m_get_capacity(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	Csi__V1__GetCapacityResponse resp = CSI__V1__GET_CAPACITY_RESPONSE__INIT;
	struct statvfs vfs;

	(void)rq;
	if (statvfs(c->dots_dir, &vfs) < 0)
		return fail(r, DM_GRPC_INTERNAL, "cannot measure '%s': %s", c->dots_dir,
			    strerror(errno));
	resp.available_capacity = (int64_t)((uint64_t)vfs.f_bavail * vfs.f_frsize);
	return pack(out, &resp);
}

static int m_controller_caps(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	static const int types[] = {
		CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CREATE_DELETE_VOLUME,
		CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__LIST_VOLUMES,
		CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__GET_CAPACITY,
		CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CREATE_DELETE_SNAPSHOT,
		CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__LIST_SNAPSHOTS,
		CSI__V1__CONTROLLER_SERVICE_CAPABILITY__RPC__TYPE__CLONE_VOLUME,
	};
	enum { N = sizeof(types) / sizeof(types[0]) };
	Csi__V1__ControllerGetCapabilitiesResponse resp =
		CSI__V1__CONTROLLER_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__ControllerServiceCapability cap[N], *capp[N];
	Csi__V1__ControllerServiceCapability__RPC rpcs[N];

	(void)c;
	(void)rq;
	(void)r;
	for (size_t i = 0; i < N; i++) {
		csi__v1__controller_service_capability__init(&cap[i]);
		csi__v1__controller_service_capability__rpc__init(&rpcs[i]);
		rpcs[i].type = types[i];
		cap[i].type_case = CSI__V1__CONTROLLER_SERVICE_CAPABILITY__TYPE_RPC;
		cap[i].rpc = &rpcs[i];
		capp[i] = &cap[i];
	}
	resp.n_capabilities = N;
	resp.capabilities = capp;
	return pack(out, &resp);
}

/* ---- snapshots ---- */

struct snap_msg {
	Csi__V1__Snapshot s;
	Google__Protobuf__Timestamp t;
};

static void snap_msg_fill(struct dm_csi *c, struct snap_msg *m, json_t *rec)
{
	int64_t ns = (int64_t)json_integer_value(json_object_get(rec, "time_ns"));
	struct dm_err err;
	dm_oid oid;

	csi__v1__snapshot__init(&m->s);
	google__protobuf__timestamp__init(&m->t);
	m->s.snapshot_id = (char *)str(rec, "id");
	m->s.source_volume_id = (char *)str(rec, "volume");
	m->s.size_bytes = (int64_t)json_integer_value(json_object_get(rec, "size"));
	m->t.seconds = ns / 1000000000;
	m->t.nanos = (int32_t)(ns % 1000000000);
	m->s.creation_time = &m->t;
	/* indexed: its commit object is in the store (btrfs indexes after) */
	m->s.ready_to_use = dm_store_commit_get(c->env->store, str(rec, "dot_id"),
						str(rec, "commit"), &oid, &err) == 0;
}

static int m_create_snapshot(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__CreateSnapshotRequest *req = rq;
	Csi__V1__CreateSnapshotResponse resp = CSI__V1__CREATE_SNAPSHOT_RESPONSE__INIT;
	char key[KEY_HEX + 1], vkey[KEY_HEX + 1], busy[KEY_HEX + 8], vbusy[KEY_HEX + 8];
	char shown[DM_DOT_NAME_TEXT_MAX], id[DM_DOT_ID_MAX + DM_COMMIT_ID_LEN_MAX + 2];
	struct snap_msg sm;
	struct dm_err err;
	json_t *rec = NULL, *vol = NULL, *res = NULL;
	bool have_vbusy = false;
	int rc;

	if (!req->name || !req->name[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the snapshot has no name");
	if (strlen(req->name) > NAME_MAX_LEN)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "a snapshot name has at most %d bytes",
			    NAME_MAX_LEN);
	if (!req->source_volume_id || !req->source_volume_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the source volume id is missing");
	for (size_t i = 0; i < req->n_parameters; i++)
		if (strncmp(req->parameters[i]->key, "csi.storage.k8s.io/", 19))
			return fail(r, DM_GRPC_INVALID_ARGUMENT, "unknown parameter '%s'",
				    req->parameters[i]->key);
	name_key(key, req->name);
	snprintf(busy, sizeof(busy), "s:%s", key);
	if (!busy_enter(c, busy))
		return aborted(r, "this snapshot");
	rc = rec_get(c, &rec, SNAP_PREFIX, key, &err);
	if (rc && rc != DM_ENOTFOUND) {
		fail_err(r, &err);
		goto done;
	}
	if (rec) {
		if (strcmp(str(rec, "volume"), req->source_volume_id))
			fail(r, DM_GRPC_ALREADY_EXISTS,
			     "snapshot '%s' exists, of another volume (%s)", req->name,
			     str(rec, "volume"));
		goto answer;
	}
	vol = find_volume(c, req->source_volume_id, vkey, r);
	if (!vol)
		goto done;
	snprintf(vbusy, sizeof(vbusy), "v:%s", vkey);
	if (!busy_enter(c, vbusy)) {
		aborted(r, "the source volume");
		goto done;
	}
	have_vbusy = true;
	if (!dot_shown(c, str(vol, "dot_id"), shown)) {
		fail(r, DM_GRPC_NOT_FOUND, "the dot of volume '%s' is gone", req->source_volume_id);
		goto done;
	}
	/* through the API: in a cluster, the branch's master commits */
	rc = rpc(c, "dots.commit",
		 json_pack("{s:s, s:s, s:s, s:{s:s}}", "dot", shown, "branch", str(vol, "branch"),
			   "message", "csi: snapshot", "metadata", "csi.snapshot", req->name),
		 &res, &err);
	if (rc) {
		fail_err(r, &err);
		goto done;
	}
	snprintf(id, sizeof(id), "%s:%s", str(vol, "dot_id"), str(res, "id"));
	rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "name", req->name, "id",
			id, "volume", req->source_volume_id, "dot_id", str(vol, "dot_id"), "dot",
			shown, "branch", str(vol, "branch"), "commit", str(res, "id"), "time_ns",
			(json_int_t)time(NULL) * 1000000000, "size", (json_int_t)0);
	{
		struct dm_dot_handle *h = dot_by_id(c, str(vol, "dot_id"));

		if (h) {
			struct dm_dot_view *v = dm_dot_handle_view(h);
			const struct dm_branch_view *b = dm_dot_view_branch(v, str(vol, "branch"));

			if (b)
				json_object_set_new(rec, "size", json_integer((json_int_t)b->size));
			dm_dot_view_unref(v);
			dm_dot_handle_unref(h);
		}
	}
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		json_object_set_new(rec, "time_ns",
				    json_integer((json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec));
	}
	if (rec_put(c, SNAP_PREFIX, key, rec, &err)) {
		fail_err(r, &err);
		goto done;
	}
	dm_info("csi: snapshot '%s' is commit %s of %s@%s", req->name, str(res, "id"), shown,
		str(vol, "branch"));
answer:
	if (!r->code) {
		snap_msg_fill(c, &sm, rec);
		resp.snapshot = &sm.s;
		r->code = pack(out, &resp);
	}
done:
	if (have_vbusy)
		busy_leave(c, vbusy);
	busy_leave(c, busy);
	json_decref(res);
	json_decref(vol);
	json_decref(rec);
	return r->code;
}

static int m_delete_snapshot(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__DeleteSnapshotRequest *req = rq;
	Csi__V1__DeleteSnapshotResponse resp = CSI__V1__DELETE_SNAPSHOT_RESPONSE__INIT;
	char key[KEY_HEX + 1], busy[KEY_HEX + 8], dot_id[DM_DOT_ID_MAX + 1];
	struct dm_err err;
	json_t *rec;
	int rc;

	if (!req->snapshot_id || !req->snapshot_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the snapshot id is missing");
	rec = rec_find(c, SNAP_PREFIX, "id", req->snapshot_id, key, &err, &rc);
	if (rc)
		return fail_err(r, &err);
	if (!rec)
		return pack(out, &resp);
	snprintf(busy, sizeof(busy), "s:%s", key);
	if (!busy_enter(c, busy)) {
		json_decref(rec);
		return aborted(r, "this snapshot");
	}
	snprintf(dot_id, sizeof(dot_id), "%s", str(rec, "dot_id"));
	if (rec_del(c, SNAP_PREFIX, key, &err)) {
		fail_err(r, &err);
	} else {
		dm_info("csi: snapshot %s deleted", req->snapshot_id);
		tidy(c, dot_id);
		r->code = pack(out, &resp);
	}
	busy_leave(c, busy);
	json_decref(rec);
	return r->code;
}

static int m_list_snapshots(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__ListSnapshotsRequest *req = rq;
	Csi__V1__ListSnapshotsResponse resp = CSI__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
	Csi__V1__ListSnapshotsResponse__Entry *entries, **ep;
	struct snap_msg *sms;
	struct page pg;
	json_t *k;
	size_t i;

	if (page_open(c, &pg, SNAP_PREFIX, req->max_entries, req->starting_token, r))
		return r->code;
	entries = dm_xcalloc(json_array_size(pg.keys) + 1, sizeof(*entries));
	ep = dm_xcalloc(json_array_size(pg.keys) + 1, sizeof(*ep));
	sms = dm_xcalloc(json_array_size(pg.keys) + 1, sizeof(*sms));
	json_array_foreach(pg.keys, i, k)
	{
		json_t *rec = json_object_get(pg.all, json_string_value(k));
		size_t n = pg.n;

		if (i < pg.start)
			continue;
		if (req->snapshot_id && req->snapshot_id[0] &&
		    strcmp(str(rec, "id"), req->snapshot_id))
			continue;
		if (req->source_volume_id && req->source_volume_id[0] &&
		    strcmp(str(rec, "volume"), req->source_volume_id))
			continue;
		if (!page_take(&pg, k))
			break;
		csi__v1__list_snapshots_response__entry__init(&entries[n]);
		snap_msg_fill(c, &sms[n], rec);
		entries[n].snapshot = &sms[n].s;
		ep[n] = &entries[n];
	}
	resp.next_token = pg.more ? pg.next : (char *)"";
	resp.n_entries = pg.n;
	resp.entries = ep;
	r->code = pack(out, &resp);
	free(entries);
	free(ep);
	free(sms);
	page_close(&pg);
	return r->code;
}

/* ---- Node ---- */

static int m_node_caps(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	Csi__V1__NodeGetCapabilitiesResponse resp = CSI__V1__NODE_GET_CAPABILITIES_RESPONSE__INIT;
	Csi__V1__NodeServiceCapability cap = CSI__V1__NODE_SERVICE_CAPABILITY__INIT, *capp = &cap;
	Csi__V1__NodeServiceCapability__RPC rpcs = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__INIT;

	(void)c;
	(void)rq;
	(void)r;
	rpcs.type = CSI__V1__NODE_SERVICE_CAPABILITY__RPC__TYPE__GET_VOLUME_STATS;
	cap.type_case = CSI__V1__NODE_SERVICE_CAPABILITY__TYPE_RPC;
	cap.rpc = &rpcs;
	resp.n_capabilities = 1;
	resp.capabilities = &capp;
	return pack(out, &resp);
}

static int m_node_info(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	Csi__V1__NodeGetInfoResponse resp = CSI__V1__NODE_GET_INFO_RESPONSE__INIT;
	Csi__V1__Topology topo = CSI__V1__TOPOLOGY__INIT;
	Csi__V1__Topology__SegmentsEntry seg = CSI__V1__TOPOLOGY__SEGMENTS_ENTRY__INIT,
					 *segp = &seg;

	(void)rq;
	(void)r;
	resp.node_id = (char *)(c->env->node_id ? c->env->node_id : "");
	if (c->env->kv_root && c->env->kv_root[0]) {
		seg.key = (char *)DM_CSI_TOPOLOGY_KEY;
		seg.value = resp.node_id;
		topo.n_segments = 1;
		topo.segments = &segp;
		resp.accessible_topology = &topo;
	}
	return pack(out, &resp);
}

/* The published record's key of target on this node: NODE/HASH. */
static void pub_key(char *out, size_t size, struct dm_csi *c, const char *target)
{
	char h[KEY_HEX + 1];

	name_key(h, target);
	snprintf(out, size, "%s/%s", c->env->node_id ? c->env->node_id : "node", h);
}

/* Records (or ends, mount NULL) the publication at the dot. */
static int dot_record(struct dm_csi *c, const char *dot_id, const char *mount_key,
		      const struct dm_mount_view *mount, const char *volume_id, char **path,
		      struct dm_err *err)
{
	struct dm_dot_handle *h = dot_by_id(c, dot_id);
	struct dm_dot_req *req;
	json_t *res = NULL;
	int rc;

	if (!h)
		return mount ? dm_err_set(err, DM_ENOTFOUND, "the volume's dot is gone") : 0;
	req = dm_dot_req_new(mount ? DM_DOT_OP_MOUNT : DM_DOT_OP_UNMOUNT);
	req->mount = dm_xcalloc(1, sizeof(*req->mount));
	if (mount) {
		*req->mount = *mount;
		req->volume_name = dm_xstrdup(volume_id);
		req->branch = dm_xstrdup(mount->branch);
	} else {
		snprintf(req->mount->mount_id, sizeof(req->mount->mount_id), "%s", mount_key);
	}
	rc = dm_dot_call(&res, h, req, CALL_MS, err);
	if (!rc && path) {
		const char *p = json_string_value(json_object_get(res, "path"));

		if (!p)
			rc = dm_err_set(err, DM_EINTERNAL, "the dot answered no path");
		else
			*path = dm_xstrdup(p);
	}
	json_decref(res);
	dm_dot_handle_unref(h);
	return rc;
}

/*
 * Gives the volume of rec its capacity as a size limit of its branch's
 * working copy on this node, where the engine enforces one (btrfs: a
 * qgroup limit; the first one turns quotas on, which may take a rescan);
 * elsewhere the capacity stays what the record says. Idempotent: made at
 * CreateVolume and again at each NodePublishVolume, so a copy of the
 * branch that moved here, or was made before limits were, has it too.
 */
static int limit_volume(struct dm_csi *c, json_t *rec, struct dm_err *err)
{
	int64_t cap = (int64_t)json_integer_value(json_object_get(rec, "capacity"));
	struct dm_dot_handle *h;
	struct dm_dot_req *req;
	json_t *res = NULL;
	int rc;

	if (cap <= 0)
		return 0;
	h = dot_by_id(c, str(rec, "dot_id"));
	if (!h)
		return dm_err_set(err, DM_ENOTFOUND, "the volume's dot is gone");
	req = dm_dot_req_new(DM_DOT_OP_LIMIT);
	req->branch = dm_xstrdup(str(rec, "branch"));
	req->limit = (uint64_t)cap;
	rc = dm_dot_call(&res, h, req, LONG_CALL_MS, err);
	json_decref(res);
	dm_dot_handle_unref(h);
	if (rc == DM_EUNSUPPORTED) {
		dm_warn("csi: volume %s: %s", str(rec, "id"), err->msg);
		rc = 0;
	}
	return rc;
}

static void mount_view_of(struct dm_mount_view *m, const char *key, json_t *vol, const char *target)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->of, sizeof(m->of), "%s", key);
	snprintf(m->mount_id, sizeof(m->mount_id), "%s", key);
	snprintf(m->container, sizeof(m->container), "csi %s", target);
	snprintf(m->volume, sizeof(m->volume), "%.120s@%.64s", str(vol, "dot"), str(vol, "branch"));
	snprintf(m->branch, sizeof(m->branch), "%s", str(vol, "branch"));
	snprintf(m->subdot, sizeof(m->subdot), "%s", DM_SUBDOT_ROOT);
}

static int m_node_publish(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__NodePublishVolumeRequest *req = rq;
	Csi__V1__NodePublishVolumeResponse resp = CSI__V1__NODE_PUBLISH_VOLUME_RESPONSE__INIT;
	char key[KEY_HEX + 1], pkey[DM_DOT_ID_MAX + KEY_HEX + 8], busy[KEY_HEX + 8];
	char mkey[KEY_HEX + 8], shown[DM_DOT_NAME_TEXT_MAX];
	struct dm_mount_view mv;
	struct dm_err err;
	json_t *vol = NULL, *pub = NULL, *all = NULL, *p;
	const char *why, *k;
	char *path = NULL;
	bool recorded = false;
	int rc;

	if (!req->volume_id || !req->volume_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume id is missing");
	if (!req->target_path || !req->target_path[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the target path is missing");
	if (req->target_path[0] != '/' || strlen(req->target_path) >= PATH_MAX)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the target path must be absolute");
	if (!req->volume_capability)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume capability is missing");
	why = cap_refused(req->volume_capability);
	if (why)
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "%s", why);
	pub_key(pkey, sizeof(pkey), c, req->target_path);
	name_key(key, req->target_path);
	snprintf(busy, sizeof(busy), "t:%s", key);
	snprintf(mkey, sizeof(mkey), MOUNT_PREFIX "%.16s", key);
	if (!busy_enter(c, busy))
		return aborted(r, "this target path");
	vol = find_volume(c, req->volume_id, key, r);
	if (!vol)
		goto done;
	if (!volume_here(c, vol)) {
		fail(r, DM_GRPC_NOT_FOUND, "volume '%s' is not on this node", req->volume_id);
		goto done;
	}
	rc = rec_get(c, &pub, PUB_PREFIX, pkey, &err);
	if (rc && rc != DM_ENOTFOUND) {
		fail_err(r, &err);
		goto done;
	}
	if (pub) {
		if (strcmp(str(pub, "volume"), req->volume_id) ||
		    json_is_true(json_object_get(pub, "readonly")) != (req->readonly != 0))
			fail(r, DM_GRPC_ALREADY_EXISTS, "'%s' is published already, %s",
			     req->target_path,
			     strcmp(str(pub, "volume"), req->volume_id) ? "with another volume"
									: "with another read-only");
		else
			r->code = pack(out, &resp);
		goto done;
	}
	if (req->volume_capability->access_mode->mode ==
	    CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_SINGLE_WRITER) {
		if (rec_all(c, &all, PUB_PREFIX, &err)) {
			fail_err(r, &err);
			goto done;
		}
		json_object_foreach(all, k, p)
		{
			if (!r->code && !strcmp(str(p, "volume"), req->volume_id))
				fail(r, DM_GRPC_FAILED_PRECONDITION,
				     "volume '%s' (single writer) is published at '%s' already",
				     req->volume_id, str(p, "target"));
		}
		if (r->code)
			goto done;
	}
	if (c->env->kv_root && c->env->kv_root[0] && dot_shown(c, str(vol, "dot_id"), shown)) {
		/* the branch is used here: this node becomes its master */
		if (dm_forward_take_master(c->env->cluster, str(vol, "dot_id"), shown,
					   str(vol, "branch"), &err)) {
			fail_err(r, &err);
			goto done;
		}
	}
	if (limit_volume(c, vol, &err)) {
		fail_err(r, &err);
		goto done;
	}
	mount_view_of(&mv, mkey, vol, req->target_path);
	if (dot_record(c, str(vol, "dot_id"), mkey, &mv, req->volume_id, &path, &err)) {
		fail_err(r, &err);
		goto done;
	}
	recorded = true;
	if (mkdir(req->target_path, 0750) < 0 && errno != EEXIST) {
		fail(r, DM_GRPC_INTERNAL, "cannot make '%s': %s", req->target_path,
		     strerror(errno));
		goto done;
	}
	if (mount(path, req->target_path, NULL, MS_BIND, NULL) < 0) {
		fail(r, errno == EPERM ? DM_GRPC_PERMISSION_DENIED : DM_GRPC_INTERNAL,
		     "cannot bind-mount '%s' at '%s': %s", path, req->target_path, strerror(errno));
		goto done;
	}
	if (req->readonly &&
	    mount(NULL, req->target_path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
		fail(r, DM_GRPC_INTERNAL, "cannot make '%s' read-only: %s", req->target_path,
		     strerror(errno));
		umount2(req->target_path, MNT_DETACH);
		goto done;
	}
	pub = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "volume", req->volume_id, "target",
			req->target_path, "node", c->env->node_id ? c->env->node_id : "", "dot_id",
			str(vol, "dot_id"), "branch", str(vol, "branch"), "readonly",
			req->readonly != 0, "mount", mkey);
	if (rec_put(c, PUB_PREFIX, pkey, pub, &err)) {
		umount2(req->target_path, MNT_DETACH);
		fail_err(r, &err);
		goto done;
	}
	dm_info("csi: published %s at '%s'%s", req->volume_id, req->target_path,
		req->readonly ? " (read-only)" : "");
	r->code = pack(out, &resp);
done:
	if (r->code && recorded && dot_record(c, str(vol, "dot_id"), mkey, NULL, NULL, NULL, &err))
		dm_warn("csi: %s", err.msg);
	free(path);
	busy_leave(c, busy);
	json_decref(all);
	json_decref(pub);
	json_decref(vol);
	return r->code;
}

static int m_node_unpublish(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__NodeUnpublishVolumeRequest *req = rq;
	Csi__V1__NodeUnpublishVolumeResponse resp = CSI__V1__NODE_UNPUBLISH_VOLUME_RESPONSE__INIT;
	char key[KEY_HEX + 1], pkey[DM_DOT_ID_MAX + KEY_HEX + 8], busy[KEY_HEX + 8];
	struct dm_err err;
	json_t *pub = NULL;
	int rc;

	if (!req->volume_id || !req->volume_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume id is missing");
	if (!req->target_path || !req->target_path[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the target path is missing");
	pub_key(pkey, sizeof(pkey), c, req->target_path);
	name_key(key, req->target_path);
	snprintf(busy, sizeof(busy), "t:%s", key);
	if (!busy_enter(c, busy))
		return aborted(r, "this target path");
	rc = rec_get(c, &pub, PUB_PREFIX, pkey, &err);
	if (rc && rc != DM_ENOTFOUND) {
		fail_err(r, &err);
		goto done;
	}
	if (pub && strcmp(str(pub, "volume"), req->volume_id)) {
		fail(r, DM_GRPC_FAILED_PRECONDITION, "'%s' is where volume %s is published, not %s",
		     req->target_path, str(pub, "volume"), req->volume_id);
		goto done;
	}
	if (!pub) {
		json_t *vol = find_volume(c, req->volume_id, key, r);

		/* not published there: done already, if the volume exists */
		json_decref(vol);
		if (!vol)
			goto done;
	}
	if (umount2(req->target_path, 0) < 0 && errno != EINVAL && errno != ENOENT) {
		fail(r, DM_GRPC_INTERNAL, "cannot unmount '%s': %s", req->target_path,
		     strerror(errno));
		goto done;
	}
	if (rmdir(req->target_path) < 0 && errno != ENOENT)
		dm_warn("csi: cannot remove '%s': %s", req->target_path, strerror(errno));
	if (pub) {
		if (dot_record(c, str(pub, "dot_id"), str(pub, "mount"), NULL, NULL, NULL, &err))
			dm_warn("csi: %s", err.msg);
		if (rec_del(c, PUB_PREFIX, pkey, &err)) {
			fail_err(r, &err);
			goto done;
		}
		dm_info("csi: unpublished %s from '%s'", req->volume_id, req->target_path);
	}
	r->code = pack(out, &resp);
done:
	busy_leave(c, busy);
	json_decref(pub);
	return r->code;
}

static _Thread_local uint64_t du_bytes;

static int du_add(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	(void)ftw;
	du_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

static int m_node_stats(struct dm_csi *c, const void *rq, struct dm_buf *out, struct res *r)
{
	const Csi__V1__NodeGetVolumeStatsRequest *req = rq;
	Csi__V1__NodeGetVolumeStatsResponse resp = CSI__V1__NODE_GET_VOLUME_STATS_RESPONSE__INIT;
	Csi__V1__VolumeUsage u = CSI__V1__VOLUME_USAGE__INIT, *up = &u;
	char key[KEY_HEX + 1], pkey[DM_DOT_ID_MAX + KEY_HEX + 8];
	struct statvfs vfs;
	struct dm_err err;
	json_t *vol, *pub = NULL;
	int64_t cap, total, avail;

	if (!req->volume_id || !req->volume_id[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume id is missing");
	if (!req->volume_path || !req->volume_path[0])
		return fail(r, DM_GRPC_INVALID_ARGUMENT, "the volume path is missing");
	vol = find_volume(c, req->volume_id, key, r);
	if (!vol)
		return r->code;
	pub_key(pkey, sizeof(pkey), c, req->volume_path);
	if (rec_get(c, &pub, PUB_PREFIX, pkey, &err) ||
	    strcmp(str(pub, "volume"), req->volume_id)) {
		json_decref(pub);
		json_decref(vol);
		return fail(r, DM_GRPC_NOT_FOUND, "volume '%s' is not published at '%s'",
			    req->volume_id, req->volume_path);
	}
	json_decref(pub);
	du_bytes = 0;
	if (nftw(req->volume_path, du_add, 16, FTW_PHYS | FTW_MOUNT) < 0 ||
	    statvfs(req->volume_path, &vfs) < 0) {
		json_decref(vol);
		return fail(r, DM_GRPC_INTERNAL, "cannot measure '%s': %s", req->volume_path,
			    strerror(errno));
	}
	cap = (int64_t)json_integer_value(json_object_get(vol, "capacity"));
	json_decref(vol);
	total = (int64_t)((uint64_t)vfs.f_blocks * vfs.f_frsize);
	avail = (int64_t)((uint64_t)vfs.f_bavail * vfs.f_frsize);
	if (cap > 0) {
		total = cap;
		if (avail > cap - (int64_t)du_bytes)
			avail = cap > (int64_t)du_bytes ? cap - (int64_t)du_bytes : 0;
	}
	u.unit = CSI__V1__VOLUME_USAGE__UNIT__BYTES;
	u.used = (int64_t)du_bytes;
	u.total = total;
	u.available = avail;
	resp.n_usage = 1;
	resp.usage = &up;
	return pack(out, &resp);
}

/* ---- dispatch ---- */

typedef int (*method_fn)(struct dm_csi *c, const void *req, struct dm_buf *out, struct res *r);

static const struct method {
	const char *path;
	const ProtobufCMessageDescriptor *desc;
	method_fn fn;
	bool needs_ready; /* refused UNAVAILABLE while dmd starts */
} methods[] = {
	{"/csi.v1.Identity/GetPluginInfo", &csi__v1__get_plugin_info_request__descriptor,
	 m_plugin_info, false},
	{"/csi.v1.Identity/GetPluginCapabilities",
	 &csi__v1__get_plugin_capabilities_request__descriptor, m_plugin_caps, false},
	{"/csi.v1.Identity/Probe", &csi__v1__probe_request__descriptor, m_probe, false},
	{"/csi.v1.Controller/CreateVolume", &csi__v1__create_volume_request__descriptor,
	 m_create_volume, true},
	{"/csi.v1.Controller/DeleteVolume", &csi__v1__delete_volume_request__descriptor,
	 m_delete_volume, true},
	{"/csi.v1.Controller/ValidateVolumeCapabilities",
	 &csi__v1__validate_volume_capabilities_request__descriptor, m_validate, true},
	{"/csi.v1.Controller/ListVolumes", &csi__v1__list_volumes_request__descriptor,
	 m_list_volumes, true},
	{"/csi.v1.Controller/GetCapacity", &csi__v1__get_capacity_request__descriptor,
	 m_get_capacity, true},
	{"/csi.v1.Controller/ControllerGetCapabilities",
	 &csi__v1__controller_get_capabilities_request__descriptor, m_controller_caps, false},
	{"/csi.v1.Controller/CreateSnapshot", &csi__v1__create_snapshot_request__descriptor,
	 m_create_snapshot, true},
	{"/csi.v1.Controller/DeleteSnapshot", &csi__v1__delete_snapshot_request__descriptor,
	 m_delete_snapshot, true},
	{"/csi.v1.Controller/ListSnapshots", &csi__v1__list_snapshots_request__descriptor,
	 m_list_snapshots, true},
	{"/csi.v1.Node/NodePublishVolume", &csi__v1__node_publish_volume_request__descriptor,
	 m_node_publish, true},
	{"/csi.v1.Node/NodeUnpublishVolume", &csi__v1__node_unpublish_volume_request__descriptor,
	 m_node_unpublish, true},
	{"/csi.v1.Node/NodeGetVolumeStats", &csi__v1__node_get_volume_stats_request__descriptor,
	 m_node_stats, true},
	{"/csi.v1.Node/NodeGetCapabilities", &csi__v1__node_get_capabilities_request__descriptor,
	 m_node_caps, false},
	{"/csi.v1.Node/NodeGetInfo", &csi__v1__node_get_info_request__descriptor, m_node_info,
	 false},
};

static int handle(void *ctx, const char *path, const uint8_t *msg, size_t len, struct dm_buf *out,
		  char **message)
{
	struct dm_csi *c = ctx;
	const struct method *m = NULL;
	ProtobufCMessage *req;
	struct res r;
	bool ready;

	memset(&r, 0, sizeof(r));
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(methods[i].path, path))
			m = &methods[i];
	if (!m) {
		*message = dm_xstrdup("dm does not implement this method");
		return DM_GRPC_UNIMPLEMENTED;
	}
	pthread_mutex_lock(&c->mu);
	ready = c->ready;
	pthread_mutex_unlock(&c->mu);
	if (m->needs_ready && !ready) {
		*message = dm_xstrdup("dmd is starting; retry");
		return DM_GRPC_UNAVAILABLE;
	}
	req = protobuf_c_message_unpack(m->desc, NULL, len, msg);
	if (!req) {
		*message = dm_xstrdup("the request is not a valid protobuf message");
		return DM_GRPC_INVALID_ARGUMENT;
	}
	r.code = m->fn(c, req, out, &r);
	protobuf_c_message_free_unpacked(req, NULL);
	if (r.code) {
		*message = dm_xstrdup(r.msg[0] ? r.msg : dm_grpc_code_name(r.code));
		dm_debug("csi: %s: %s: %s", path, dm_grpc_code_name(r.code), r.msg);
	}
	return r.code;
}

/* ---- lifecycle ---- */

/* The publications of this node, recorded with their dots again (a dot
 * keeps its users in memory only): after a restart, a delete is still
 * refused while a pod uses the volume. */
static void restore_published(struct dm_csi *c)
{
	char prefix[DM_DOT_ID_MAX + 64];
	struct dm_mount_view mv;
	struct dm_err err;
	json_t *all = NULL, *p, *vol;
	const char *k;

	snprintf(prefix, sizeof(prefix), PUB_PREFIX "%s/",
		 c->env->node_id ? c->env->node_id : "node");
	if (rec_all(c, &all, prefix, &err))
		return;
	json_object_foreach(all, k, p)
	{
		char vkey[KEY_HEX + 1];
		struct res r;

		memset(&r, 0, sizeof(r));
		vol = find_volume(c, str(p, "volume"), vkey, &r);
		if (!vol)
			continue;
		mount_view_of(&mv, str(p, "mount"), vol, str(p, "target"));
		if (dot_record(c, str(p, "dot_id"), str(p, "mount"), &mv, str(p, "volume"), NULL,
			       &err))
			dm_warn("csi: cannot record '%s' with its dot again: %s", str(p, "target"),
				err.msg);
		json_decref(vol);
	}
	json_decref(all);
}

int dm_csi_start(struct dm_csi **out, const struct dm_api_env *env, const char *socket_path,
		 const char *dots_dir, struct dm_err *err)
{
	struct dm_csi *c = dm_xcalloc(1, sizeof(*c));
	int rc;

	c->env = env;
	c->dots_dir = dm_xstrdup(dots_dir);
	pthread_mutex_init(&c->mu, NULL);
	restore_published(c);
	rc = dm_grpc_listen(&c->grpc, socket_path, handle, c, err);
	if (rc) {
		dm_csi_free(c, 0);
		return dm_err_prefix(err, "cannot serve CSI");
	}
	dm_info("CSI driver '%s' on %s", DM_CSI_DRIVER_NAME, socket_path);
	*out = c;
	return 0;
}

void dm_csi_set_ready(struct dm_csi *c, bool ready)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->ready = ready;
	pthread_mutex_unlock(&c->mu);
}

void dm_csi_quiesce(struct dm_csi *c)
{
	if (!c)
		return;
	dm_csi_set_ready(c, false);
	dm_grpc_quiesce(c->grpc);
}

void dm_csi_free(struct dm_csi *c, int timeout_ms)
{
	if (!c)
		return;
	if (!dm_grpc_free(c->grpc, timeout_ms))
		return; /* a call still runs and uses c */
	for (size_t i = 0; i < c->nbusy; i++)
		free(c->busy[i]);
	free(c->busy);
	pthread_mutex_destroy(&c->mu);
	free(c->dots_dir);
	free(c);
}
