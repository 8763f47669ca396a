/*
 * objects_http.c - the /objects endpoints (see objects_http.h and
 * docs/internals/transfer.md): what a dmd answers to another dmd that
 * pushes to it or pulls from it.
 *
 * Invariants:
 *   - Nothing here runs before http.c authenticated the caller. refs and
 *     get need role read in the dot, a push's refs and update role write
 *     (access.h decides, for the dots.* methods too; creating a dot needs
 *     its namespace or an admin); missing and put any user, since objects
 *     are content-addressed and uploading one cannot change another.
 *   - Every body is bounded before it is buffered: a put's stream is
 *     parsed as it arrives and never held whole; others are kept up to
 *     their endpoint's limit.
 *   - A put stores a record only through dm_sync_accept (hash and
 *     everything below present), in stream order; the first bad record
 *     stops it, and what was stored before it stays. The store is flushed
 *     before a put is answered, so an acknowledged object is durable.
 *   - A dot's state is never touched here: views are read, and update is
 *     a RECEIVE request to the dot's actor.
 */
#include "server/api/objects_http.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/api.h"
#include "server/api/sessions.h"
#include "server/api/objects_update.h"
#include "server/cluster/forward.h"
#include "server/dots/access.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "store/store.h"
#include "store/object.h"
#include "store/oidmap.h"
#include "sync/reach.h"
#include "sync/receive.h"
#include "sync/wire.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/names.h"

#include "util/banned.h"

#define GET_BLOCK          (1u << 20) /* bytes of records read ahead per refill */
#define CHAIN_MAX          (1u << 20) /* commits in one branch's history */
#define UPDATE_DEADLINE_MS (3600 * 1000)
#define SESSION_WAIT_MS    (60 * 1000) /* for a session another request holds */

enum endpoint { EP_VERSIONS, EP_REFS, EP_MISSING, EP_GET, EP_PUT, EP_UPDATE };

static const struct {
	const char *path;
	enum endpoint ep;
	const char *method;
	size_t max_body;
} endpoints[] = {
	{"/objects/versions", EP_VERSIONS, MHD_HTTP_METHOD_GET, 0},
	{"/objects/v1/refs", EP_REFS, MHD_HTTP_METHOD_GET, 0},
	{"/objects/v1/missing", EP_MISSING, MHD_HTTP_METHOD_POST,
	 (size_t)DM_WIRE_MAX_IDS *DM_OID_RAWSZ},
	{"/objects/v1/get", EP_GET, MHD_HTTP_METHOD_POST, (size_t)DM_WIRE_MAX_IDS *DM_OID_RAWSZ},
	{"/objects/v1/put", EP_PUT, MHD_HTTP_METHOD_POST, DM_OBJECTS_PUT_MAX},
	{"/objects/v1/update", EP_UPDATE, MHD_HTTP_METHOD_POST, DM_OBJECTS_JSON_MAX},
};

struct dm_objects_req {
	const struct dm_api_env *env;
	struct dm_caller caller;
	enum endpoint ep;
	size_t max_body;
	uint64_t body_len;                      /* bytes of body seen */
	struct dm_buf body;                     /* every endpoint but put */
	char dot[DM_DOT_NAME_TEXT_MAX + 8];     /* ?dot= (refs, get) */
	char dot_id[DM_DOT_ID_MAX + 1];         /* ?dot_id= (put); "" when absent */
	char purpose[8];                        /* ?for= (refs): "push" or "" */
	char session[DM_SESSION_TOKEN_LEN + 1]; /* the DM_SESSION_HEADER; "" when absent */
	/* put */
	struct dm_wire_parser parser;
	uint64_t stored, stored_bytes, records, raw_bytes;
	struct dm_oidmap put_ids; /* sent in this put */
	uint64_t hold;            /* on the store, from the first record of a put (store.h) */
	bool held;
	struct dm_oidmap put_refs; /* named by what this put sent, to check */
	struct dm_buf raw;         /* scratch: one decompressed record */
	int rc;                    /* the first failure, or 0 */
	struct dm_err err;
};

bool dm_objects_path(const char *url)
{
	return !strcmp(url, "/objects/versions") || !strncmp(url, "/objects/v1/", 12);
}

/* ---- answers ---- */

/* The session token (when there is one) travels back in every answer. */
static enum MHD_Result queue_token(struct MHD_Connection *c, unsigned status, const char *ctype,
				   void *body, size_t len, const char *token)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (token && token[0])
		MHD_add_response_header(resp, DM_SESSION_HEADER, token);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *ctype,
			     void *body, size_t len)
{
	return queue_token(c, status, ctype, body, len, NULL);
}

static enum MHD_Result answer_err_token(struct MHD_Connection *c, const struct dm_err *err,
					const char *token)
{
	char *body = dm_rpc_error_body(-32000, err->code, err->msg);

	if (!body)
		return MHD_NO;
	return queue_token(c, (unsigned)dm_err_http_status(err->code), "application/json", body,
			   strlen(body), token);
}

static enum MHD_Result answer_err(struct MHD_Connection *c, const struct dm_err *err)
{
	return answer_err_token(c, err, NULL);
}

/* Answers j (taken) as JSON with 200. */
static enum MHD_Result answer_json_token(struct MHD_Connection *c, json_t *j, const char *token)
{
	char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!body)
		return MHD_NO;
	return queue_token(c, MHD_HTTP_OK, "application/json", body, strlen(body), token);
}

static enum MHD_Result answer_json(struct MHD_Connection *c, json_t *j)
{
	return answer_json_token(c, j, NULL);
}

/* ---- who sees which objects (sessions.h) ---- */

/* Admins see the whole store, and so does another node of the cluster
 * forwarding a caller's request (it checked the caller). Everyone else
 * sees what their transfer session reaches. */
static bool sees_all(const struct dm_objects_req *r)
{
	return r->caller.admin || r->caller.forwarded;
}

/* The caller's session, taken (NULL for those who see all). */
static int take_session(struct dm_session **out, struct dm_objects_req *r, struct dm_err *err)
{
	*out = NULL;
	if (sees_all(r))
		return 0;
	if (!r->session[0])
		return dm_err_set(err, DM_EINVAL,
				  "this request needs the %s header that 'refs' answered; the "
				  "dm that sent it is too old for this server",
				  DM_SESSION_HEADER);
	return dm_sessions_take(r->env->sessions, r->session, r->caller.user, SESSION_WAIT_MS, out,
				err);
}

static int not_here(struct dm_err *err, const dm_oid *id)
{
	char hex[DM_OID_HEXSZ + 1];

	dm_oid_hex(hex, id);
	return dm_err_set(err, DM_ENOTFOUND, "object %s is not on this server", hex);
}

/* ---- looking dots up ---- */

/* The dot named `text`, if the caller may do `what` to it, which needs
 * role need (access.h): a new handle reference. DM_EPERM naming what is
 * missing, as the dots.* methods answer. */
static int find_dot_for(struct dm_dot_handle **out, struct dm_objects_req *r, const char *text,
			int need, const char *what, struct dm_err *err)
{
	struct dm_registry_snap *snap;
	const struct dm_registry_entry *e;
	struct dm_dot_name name;
	char shown[DM_DOT_NAME_TEXT_MAX];
	int rc = dm_dot_name_parse(&name, text, err);

	if (rc)
		return rc;
	dm_dot_name_text(shown, &name);
	snap = dm_registry_snapshot(r->env->registry);
	e = dm_registry_find(snap, &name);
	if (e) {
		struct dm_dot_view *v = dm_dot_handle_view(e->dot);

		rc = dm_dot_may(v, &r->caller, need, what, err);
		dm_dot_view_unref(v);
	}
	if (e && !rc) {
		*out = e->dot;
		dm_dot_handle_ref(e->dot);
	}
	dm_registry_snap_unref(snap);
	if (!e)
		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'", shown);
	return rc;
}

/* The dot named `text`, if the caller may read it (find_dot_for). */
static int find_dot(struct dm_dot_handle **out, struct dm_objects_req *r, const char *text,
		    struct dm_err *err)
{
	return find_dot_for(out, r, text, DM_ROLE_READ, "read", err);
}

/* ---- versions, refs ---- */

static enum MHD_Result do_versions(struct MHD_Connection *c)
{
	return answer_json(c, json_pack("{s:[i]}", "versions", 1));
}

/* {"head":H,"chain":[ID…],"objects":[OID…]} of one branch. */
static int branch_refs(json_t **out, struct dm_store *store, const char *dot_id, const char *head,
		       struct dm_err *err)
{
	char **ids = NULL;
	size_t n = 0;
	json_t *chain = json_array(), *objects = json_array(), *pruned = NULL;
	int rc = 0;

	if (head[0])
		rc = dm_dot_chain(&ids, &n, store, dot_id, head, CHAIN_MAX, err);
	for (size_t i = 0; i < n && !rc; i++) {
		char hex[DM_OID_HEXSZ + 1];
		unsigned flags = 0;
		dm_oid oid;

		rc = dm_store_commit_info(store, dot_id, ids[i], &oid, &flags, err);
		if (rc)
			break;
		/* their data is gone here: a puller that lacks them cannot have them */
		if (flags & (DM_COMMIT_PRUNED | DM_COMMIT_DAMAGED)) {
			if (!pruned)
				pruned = json_array();
			json_array_append_new(pruned, json_string(ids[i]));
		}
		dm_oid_hex(hex, &oid);
		json_array_append_new(chain, json_string(ids[i]));
		json_array_append_new(objects, json_string(hex));
	}
	dm_dot_chain_free(ids, n);
	if (rc) {
		json_decref(chain);
		json_decref(objects);
		json_decref(pruned);
		return rc;
	}
	*out = json_pack("{s:s, s:o, s:o}", "head", head, "chain", chain, "objects", objects);
	if (pruned)
		json_object_set_new(*out, "pruned", pruned);
	return 0;
}

/* A session for the caller over the commits of branches (NULL: none yet,
 * a push that will create the dot): its token in token, or "" for those
 * who see all. */
static int open_session(char *token, struct dm_objects_req *r, json_t *branches, struct dm_err *err)
{
	size_t n = 0, cap = 0;
	dm_oid *seeds = NULL;
	const char *name;
	json_t *b;
	int rc;

	token[0] = '\0';
	if (sees_all(r))
		return 0;
	json_object_foreach(branches, name, b)
	{
		json_t *objects = json_object_get(b, "objects"), *o;
		size_t i;

		json_array_foreach(objects, i, o)
		{
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				seeds = dm_xrealloc(seeds, cap * sizeof(*seeds));
			}
			if (!dm_oid_from_hex(&seeds[n], json_string_value(o),
					     json_string_length(o)))
				n++;
		}
	}
	rc = dm_sessions_create(r->env->sessions, r->caller.user, r->dot,
				dm_reach_new(r->env->store, seeds, n, 0), token, err);
	free(seeds);
	return rc;
}

static enum MHD_Result do_refs(struct dm_objects_req *r, struct MHD_Connection *c)
{
	char token[DM_SESSION_TOKEN_LEN + 1] = "";
	struct dm_dot_handle *h = NULL;
	struct dm_dot_view *v = NULL;
	json_t *branches = NULL;
	struct dm_err err;
	int rc;

	dm_err_clear(&err);
	/* a push's refs: refuse one that could not update, before data moves */
	if (!strcmp(r->purpose, "push"))
		rc = find_dot_for(&h, r, r->dot, DM_ROLE_WRITE, "push to", &err);
	else
		rc = find_dot(&h, r, r->dot, &err);
	if (rc == DM_ENOTFOUND && !strcmp(r->purpose, "push")) {
		/* a push would create it */
		struct dm_dot_name name;
		struct dm_err serr;

		if (!dm_dot_name_parse(&name, r->dot, NULL) &&
		    dm_dot_may_create(&name, &r->caller, &err))
			rc = DM_EPERM;
		else if (open_session(token, r, NULL, &serr))
			err = serr;
	}
	if (!rc)
		rc = dm_dot_wait_sealed(h, 3600 * 1000, &err);
	if (rc) {
		dm_dot_handle_unref(h);
		return answer_err_token(c, &err, token);
	}
	v = dm_dot_handle_view(h);
	branches = json_object();
	for (size_t i = 0; i < v->nbranches && !rc; i++) {
		json_t *b = NULL;

		rc = branch_refs(&b, r->env->store, v->id, v->branches[i].head, &err);
		if (!rc)
			json_object_set_new(branches, v->branches[i].name, b);
	}
	if (!rc)
		rc = open_session(token, r, branches, &err);
	if (rc) {
		json_decref(branches);
		dm_dot_view_unref(v);
		dm_dot_handle_unref(h);
		return answer_err(c, &err);
	}
	{
		json_t *j = json_pack("{s:s, s:s, s:o, s:b}", "id", v->id, "current", v->current,
				      "branches", branches, "strip_setid", v->strip_setid);

		dm_dot_view_unref(v);
		dm_dot_handle_unref(h);
		return answer_json_token(c, j, token);
	}
}

/* ---- missing ---- */

/* An object the caller sees is one the server holds and the caller's
 * session reaches; any other is missing to them, whether the store holds
 * it or not (the uploader sends it; the store keeps one copy). */
static enum MHD_Result do_missing(struct dm_objects_req *r, struct MHD_Connection *c)
{
	struct dm_buf out = DM_BUF_INIT;
	struct dm_session *sn = NULL;
	struct dm_err err;
	const dm_oid *ids;
	size_t n = 0;
	char *body;
	int rc;

	dm_err_clear(&err);
	rc = dm_wire_ids_check(r->body.len, &n, &err);
	if (!rc)
		rc = take_session(&sn, r, &err);
	ids = dm_wire_ids(r->body.data);
	for (size_t i = 0; i < n && !rc; i++) {
		/* a commit held as a record only is missing: its data is wanted */
		int seen = dm_store_has_whole(r->env->store, &ids[i]);

		if (seen && sn)
			seen = dm_reach_allows(sn->reach, &ids[i], &err);
		else if (seen)
			/* no session to pin it: the upload that counts on it has an hour */
			dm_store_lease(r->env->store, &ids[i], DM_SESSION_IDLE_MS);
		if (seen < 0)
			rc = seen;
		else if (!seen && dm_wire_ids_add(&out, &ids[i], 1))
			rc = dm_err_set(&err, DM_ENOMEM, "out of memory");
	}
	dm_sessions_give(r->env->sessions, sn);
	if (rc) {
		dm_buf_release(&out);
		return answer_err(c, &err);
	}
	n = out.len;
	body = n ? dm_buf_detach(&out, NULL) : malloc(1);
	return body ? queue(c, MHD_HTTP_OK, "application/octet-stream", body, n) : MHD_NO;
}

/* ---- get: a record stream made as the client reads it ---- */

struct get_stream {
	struct dm_store *store;
	dm_oid *ids;
	size_t n, next;
	struct dm_buf pending; /* records read ahead */
	size_t pos;            /* of pending, already sent */
	bool ended;            /* an error record went into pending */
	struct dm_err refused; /* ids[n] may not be read: set when code != 0 */
};

/* Reads the next records (about GET_BLOCK bytes) into pending. */
static void refill(struct get_stream *g)
{
	dm_buf_reset(&g->pending);
	g->pos = 0;
	if (g->next == g->n && g->refused.code && !g->ended) {
		dm_wire_error_add(&g->pending, g->refused.code, g->refused.msg);
		g->ended = true;
	}
	while (g->next < g->n && g->pending.len < GET_BLOCK && !g->ended) {
		struct dm_pack_rec rec;
		struct dm_err err;
		size_t at = g->pending.len;

		dm_err_clear(&err);
		if (dm_buf_grow(&g->pending, DM_PACK_REC_LEN)) {
			dm_err_set(&err, DM_ENOMEM, "out of memory");
		} else {
			g->pending.len += DM_PACK_REC_LEN;
			if (!dm_store_get_stored(g->store, &g->ids[g->next], &rec, &g->pending,
						 &err)) {
				dm_pack_rec_encode(g->pending.data + at, &rec);
				g->next++;
				continue;
			}
		}
		/* the id is not here (or unreadable): the stream ends saying so */
		g->pending.len = at;
		if (err.code == DM_ENOTFOUND) {
			not_here(&err, &g->ids[g->next]);
		} else {
			dm_error("objects: get: %s", err.msg);
		}
		dm_wire_error_add(&g->pending, err.code, err.msg);
		g->ended = true;
	}
}

static ssize_t get_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct get_stream *g = cls;
	size_t n;

	if (g->pos >= g->pending.len) {
		if (g->ended || (g->next >= g->n && !g->refused.code))
			return MHD_CONTENT_READER_END_OF_STREAM;
		refill(g);
		if (!g->pending.len)
			return MHD_CONTENT_READER_END_OF_STREAM;
	}
	n = g->pending.len - g->pos;
	if (n > max)
		n = max;
	memcpy(buf, g->pending.data + g->pos, n);
	g->pos += n;
	return (ssize_t)n;
}

static void get_free(void *cls)
{
	struct get_stream *g = cls;

	dm_buf_release(&g->pending);
	free(g->ids);
	free(g);
}

/* How many of ids[0..n) the caller may read, in order: the first that it
 * may not is refused as an object the server does not hold. */
static int readable_prefix(size_t *out, struct dm_objects_req *r, const dm_oid *ids, size_t n,
			   struct dm_err *refused, struct dm_err *err)
{
	struct dm_session *sn = NULL;
	int rc = take_session(&sn, r, err);

	*out = n;
	if (rc || !sn)
		return rc;
	if (strcmp(sn->dot, r->dot))
		rc = dm_err_set(err, DM_EINVAL,
				"this transfer session reads '%s', not '%s'; ask 'refs' again",
				sn->dot, r->dot);
	for (size_t i = 0; i < n && !rc; i++) {
		int ok = dm_reach_allows(sn->reach, &ids[i], err);

		if (ok < 0) {
			rc = ok;
		} else if (!ok) {
			not_here(refused, &ids[i]);
			*out = i;
			break;
		}
	}
	dm_sessions_give(r->env->sessions, sn);
	return rc;
}

static enum MHD_Result do_get(struct dm_objects_req *r, struct MHD_Connection *c)
{
	struct dm_dot_handle *h = NULL;
	struct MHD_Response *resp;
	struct get_stream *g;
	struct dm_err err;
	enum MHD_Result ret;
	size_t n = 0;

	dm_err_clear(&err);
	if (find_dot(&h, r, r->dot, &err) || dm_wire_ids_check(r->body.len, &n, &err))
		return answer_err(c, &err);
	dm_dot_handle_unref(h);
	g = dm_xcalloc(1, sizeof(*g));
	dm_err_clear(&g->refused);
	if (readable_prefix(&g->n, r, dm_wire_ids(r->body.data), n, &g->refused, &err)) {
		free(g);
		return answer_err(c, &err);
	}
	g->store = r->env->store;
	g->ids = dm_xmalloc(g->n ? g->n * sizeof(dm_oid) : 1);
	if (g->n)
		memcpy(g->ids, r->body.data, g->n * sizeof(dm_oid));
	dm_buf_init(&g->pending, 0);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256 * 1024, get_reader, g,
						 get_free);
	if (!resp) {
		get_free(g);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- put ---- */

static int note_ref(void *ctx, const struct dm_obj_ref *ref)
{
	struct dm_objects_req *r = ctx;

	dm_oidmap_put(&r->put_refs, ref->id, NULL);
	return 0;
}

/* For a caller who does not see all: what the record is and names, for
 * the check at the end of the put (check_put). */
static int note_put(struct dm_objects_req *r, const struct dm_pack_rec *rec,
		    const unsigned char *bytes, struct dm_err *err)
{
	const unsigned char *raw;
	int rc = 0;

	dm_oidmap_put(&r->put_ids, &rec->id, NULL);
	if (rec->kind != DM_OBJ_CHUNK) {
		rc = dm_sync_rec_raw(&raw, &r->raw, rec, bytes, err);
		if (!rc)
			rc = dm_object_refs(rec->kind, raw, rec->raw_len, note_ref, r, err);
	}
	return rc;
}

static int put_rec(void *ctx, const struct dm_pack_rec *rec, const unsigned char *bytes,
		   struct dm_err *err)
{
	struct dm_objects_req *r = ctx;
	bool stored = false;
	int rc;

	if (!r->held) {
		/* what this put stores is kept until check_put pins or leases it */
		r->hold = dm_store_hold(r->env->store);
		r->held = true;
	}
	rc = dm_sync_accept(r->env->store, rec, bytes, r->dot_id[0] ? r->dot_id : NULL, &stored,
			    err);
	if (!rc && !sees_all(r))
		rc = note_put(r, rec, bytes, err);
	else if (!rc)
		dm_oidmap_put(&r->put_ids, &rec->id, NULL);
	if (rc)
		return rc;
	r->records++;
	r->raw_bytes += rec->raw_len;
	if (stored) {
		r->stored++;
		r->stored_bytes += rec->raw_len;
	}
	return 0;
}

/*
 * What a put sent may name only objects the caller sees: sent by this
 * transfer, or reachable from the dot it reads. Otherwise a caller could
 * upload a tree naming another user's files and push a commit of it. The
 * records are stored by now (each names only stored objects), but none
 * of them becomes visible to the caller unless the check passes, so a
 * refused one stays out of every session and every update.
 */
static int check_put(struct dm_objects_req *r, struct dm_err *err)
{
	struct dm_session *sn = NULL;
	const dm_oid *id;
	void *unused;
	size_t it;
	int rc = take_session(&sn, r, err);

	if (!rc && !sn) {
		/* one who sees all has no session: what it sent is leased for as
		 * long as a session would keep it */
		for (it = 0; dm_oidmap_next(&r->put_ids, &it, &id, &unused);)
			dm_store_lease(r->env->store, id, DM_SESSION_IDLE_MS);
	}
	if (rc || !sn)
		return rc;
	for (it = 0; !rc && dm_oidmap_next(&r->put_refs, &it, &id, &unused);) {
		int ok;

		if (dm_oidmap_get(&r->put_ids, id))
			continue;
		ok = dm_reach_allows(sn->reach, id, err);
		if (ok < 0)
			rc = ok;
		else if (!ok)
			rc = not_here(err, id);
	}
	for (it = 0; !rc && dm_oidmap_next(&r->put_ids, &it, &id, &unused);)
		rc = dm_reach_give(sn->reach, id, err);
	dm_sessions_give(r->env->sessions, sn);
	return rc;
}

static void put_feed(struct dm_objects_req *r, const char *data, size_t len)
{
	if (r->rc)
		return; /* refused from a record on: the rest is read and dropped */
	r->rc = dm_wire_parser_feed(&r->parser, data, len, put_rec, r, &r->err);
}

static enum MHD_Result do_put(struct dm_objects_req *r, struct MHD_Connection *c)
{
	struct dm_err ferr;
	int frc;

	if (!r->rc)
		r->rc = dm_wire_parser_finish(&r->parser, &r->err);
	/* what was valid is kept, and durable before anyone hears of it */
	frc = dm_store_flush(r->env->store, &ferr);
	if (frc && !r->rc) {
		r->rc = frc;
		r->err = ferr;
	}
	if (!r->rc)
		r->rc = check_put(r, &r->err);
	if (r->rc) {
		dm_info("objects: put by '%s' refused after %llu records: %s", r->caller.user,
			(unsigned long long)r->records, r->err.msg);
		return answer_err(c, &r->err);
	}
	/* Only those who see all learn what was new here: to anyone else, every
	 * record counts as stored, so the answer says nothing of what the store
	 * held before. */
	if (!sees_all(r))
		return answer_json(c, json_pack("{s:I, s:I}", "stored", (json_int_t)r->records,
						"bytes", (json_int_t)r->raw_bytes));
	return answer_json(c, json_pack("{s:I, s:I}", "stored", (json_int_t)r->stored, "bytes",
					(json_int_t)r->stored_bytes));
}

/* ---- update ---- */

/* The dot an update goes to, created with the sender's id when missing. */
static int update_target(struct dm_dot_handle **out, struct dm_objects_req *r,
			 const struct dm_objects_update *u, struct dm_err *err)
{
	char shown[DM_DOT_NAME_TEXT_MAX];

	dm_dot_name_text(shown, &u->name);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct dm_registry_snap *snap = dm_registry_snapshot(r->env->registry);
		const struct dm_registry_entry *e = dm_registry_find(snap, &u->name);
		json_t *made = NULL;
		int rc;

		if (e) {
			struct dm_dot_view *v = dm_dot_handle_view(e->dot);

			rc = dm_dot_may(v, &r->caller, DM_ROLE_WRITE, "push to", err);
			dm_dot_view_unref(v);
			if (!rc && strcmp(e->id, u->id))
				rc = dm_err_set(
					err, DM_EEXISTS,
					"remote dot '%s' is a different dot (id %s); push under "
					"another name with --remote-name",
					shown, e->id);
			else if (!rc) {
				*out = e->dot;
				dm_dot_handle_ref(e->dot);
				rc = 0;
			}
			dm_registry_snap_unref(snap);
			return rc;
		}
		e = dm_registry_find_id(snap, u->id);
		if (e) {
			char other[DM_DOT_NAME_TEXT_MAX];
			struct dm_dot_view *v = dm_dot_handle_view(e->dot);
			bool visible = dm_dot_allows(v, &r->caller, DM_ROLE_READ);

			dm_dot_view_unref(v);
			dm_dot_name_text(other, &e->name);
			dm_registry_snap_unref(snap);
			if (!visible)
				return dm_err_set(
					err, DM_EEXISTS,
					"this dot exists on the remote under another name");
			return dm_err_set(
				err, DM_EEXISTS,
				"this dot exists on the remote as '%s'; push to that name "
				"with --remote-name",
				other);
		}
		dm_registry_snap_unref(snap);
		rc = dm_dot_may_create(&u->name, &r->caller, err);
		if (rc)
			return rc;
		rc = dm_registry_create(r->env->registry, &made, &u->name, u->id,
					DM_RPC_DEADLINE_DEFAULT_MS, err);
		json_decref(made);
		if (rc == DM_EEXISTS)
			continue; /* someone made it meanwhile: look again */
		if (rc)
			return rc;
		dm_info("objects: '%s' created dot '%s' (%s) by pushing", r->caller.user, shown,
			u->id);
	}
	return dm_err_set(err, DM_ECONFLICT, "dot '%s' changed while it was being created", shown);
}

/* The commits an update names must be ones the caller sees (sent by this
 * transfer, or already on the dot): a commit object of another dot is
 * refused by the dot anyway, but a caller learns nothing of it here. */
static int check_update(struct dm_objects_req *r, const struct dm_objects_update *u,
			struct dm_err *err)
{
	struct dm_session *sn = NULL;
	int rc = take_session(&sn, r, err);

	for (size_t i = 0; sn && i < u->n && !rc; i++) {
		int ok = dm_reach_allows(sn->reach, &u->commits[i].oid, err);

		if (ok < 0)
			rc = ok;
		else if (!ok)
			rc = not_here(err, &u->commits[i].oid);
	}
	dm_sessions_give(r->env->sessions, sn);
	return rc;
}

static enum MHD_Result do_update(struct dm_objects_req *r, struct MHD_Connection *c)
{
	struct dm_dot_handle *h = NULL;
	struct dm_dot_req *req;
	struct dm_objects_update u;
	json_t *doc, *result = NULL;
	json_error_t jerr;
	struct dm_err err;
	int rc;

	dm_err_clear(&err);
	doc = json_loadb((const char *)r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc || !json_is_object(doc)) {
		json_decref(doc);
		dm_err_set(&err, DM_EINVAL, "update: cannot parse the request: %s", jerr.text);
		return answer_err(c, &err);
	}
	rc = dm_objects_update_parse(&u, doc, &err);
	if (!rc)
		rc = check_update(r, &u, &err);
	if (!rc)
		rc = update_target(&h, r, &u, &err);
	if (!rc && r->env->kv_root[0]) {
		/* in a cluster, the branch's master applies it */
		char shown[DM_DOT_NAME_TEXT_MAX];
		dm_oid *oids = dm_xcalloc(u.n, sizeof(*oids));
		bool forwarded = false;

		for (size_t i = 0; i < u.n; i++)
			oids[i] = u.commits[i].oid;
		dm_dot_name_text(shown, &u.name);
		rc = dm_forward_update(r->env->cluster, &r->caller, doc, u.id, shown, u.branch,
				       oids, u.n, &result, &forwarded, &err);
		free(oids);
		if (rc || forwarded) {
			dm_dot_handle_unref(h);
			h = NULL;
			free(u.commits);
			json_decref(doc);
			return rc ? answer_err(c, &err) : answer_json(c, result);
		}
	}
	if (!rc) {
		req = dm_dot_req_new(DM_DOT_OP_RECEIVE);
		req->branch = dm_xstrdup(u.branch);
		req->old_head = dm_xstrdup(u.old_head);
		req->ncommits = u.n;
		req->commits = u.commits;
		u.commits = NULL;
		req->stash = u.stash;
		req->trusted = r->caller.admin;
		rc = dm_dot_call(&result, h, req, UPDATE_DEADLINE_MS, &err);
		dm_dot_handle_unref(h);
	}
	free(u.commits);
	json_decref(doc);
	if (rc)
		return answer_err(c, &err);
	return answer_json(c, result);
}

/* ---- the request's life ---- */

static void query_value(char *out, size_t size, struct MHD_Connection *c, const char *key)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);

	snprintf(out, size, "%s", v && strlen(v) < size ? v : "");
}

int dm_objects_begin(struct dm_objects_req **out, const struct dm_api_env *env,
		     const struct dm_caller *caller, struct MHD_Connection *c, const char *url,
		     const char *method, struct dm_err *err)
{
	const char *cl =
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	struct dm_objects_req *r;
	size_t i, n = sizeof(endpoints) / sizeof(endpoints[0]);

	*out = NULL;
	for (i = 0; i < n; i++)
		if (!strcmp(url, endpoints[i].path))
			break;
	if (i == n)
		return dm_err_set(err, DM_ENOTFOUND, "no such endpoint '%.100s'", url);
	if (strcmp(method, endpoints[i].method))
		return dm_err_set(err, DM_EINVAL, "'%s' takes %s, not %.16s", url,
				  endpoints[i].method, method);
	if (cl) {
		char *end;
		unsigned long long len;

		errno = 0;
		len = strtoull(cl, &end, 10);
		if (end != cl && !errno && len > endpoints[i].max_body)
			return dm_err_set(err, DM_ETOOBIG, "request body is larger than %zu bytes",
					  endpoints[i].max_body);
	}
	r = dm_xcalloc(1, sizeof(*r));
	r->env = env;
	r->caller = *caller;
	r->ep = endpoints[i].ep;
	r->max_body = endpoints[i].max_body;
	dm_buf_init(&r->body, r->ep == EP_PUT ? 0 : r->max_body);
	dm_wire_parser_init(&r->parser);
	dm_oidmap_init(&r->put_ids, 0);
	dm_oidmap_init(&r->put_refs, 0);
	dm_buf_init(&r->raw, 0);
	{
		const char *tok =
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, DM_SESSION_HEADER);

		/* a token of the wrong length is kept as one that matches none */
		snprintf(r->session, sizeof(r->session), "%s",
			 !tok                                  ? ""
			 : strlen(tok) == DM_SESSION_TOKEN_LEN ? tok
							       : "-");
	}
	query_value(r->dot, sizeof(r->dot), c, "dot");
	query_value(r->dot_id, sizeof(r->dot_id), c, "dot_id");
	query_value(r->purpose, sizeof(r->purpose), c, "for");
	*out = r;
	return 0;
}

enum MHD_Result dm_objects_handle(struct dm_objects_req *r, struct MHD_Connection *c,
				  const char *upload, size_t *upload_size)
{
	if (*upload_size) {
		size_t len = *upload_size;

		*upload_size = 0;
		r->body_len += len;
		if (r->body_len > r->max_body) {
			if (!r->rc)
				r->rc = dm_err_set(&r->err, DM_ETOOBIG,
						   "request body is larger than %zu bytes",
						   r->max_body);
			dm_buf_release(&r->body);
			return MHD_YES;
		}
		if (r->ep == EP_PUT)
			put_feed(r, upload, len);
		else if (!r->rc && dm_buf_add(&r->body, upload, len))
			r->rc = dm_err_set(&r->err, DM_ENOMEM, "out of memory");
		return MHD_YES;
	}
	if (r->rc && r->ep != EP_PUT)
		return answer_err(c, &r->err);
	switch (r->ep) {
	case EP_VERSIONS:
		return do_versions(c);
	case EP_REFS:
		return do_refs(r, c);
	case EP_MISSING:
		return do_missing(r, c);
	case EP_GET:
		return do_get(r, c);
	case EP_PUT:
		return do_put(r, c);
	case EP_UPDATE:
		return do_update(r, c);
	}
	return MHD_NO;
}

void dm_objects_free(struct dm_objects_req *r)
{
	if (!r)
		return;
	dm_buf_release(&r->body);
	dm_wire_parser_release(&r->parser);
	dm_oidmap_release(&r->put_ids);
	if (r->held)
		dm_store_unhold(r->env->store, r->hold);
	dm_oidmap_release(&r->put_refs);
	dm_buf_release(&r->raw);
	explicit_bzero(r->session, sizeof(r->session));
	free(r);
}
