/*
 * etcd_json.c - decoding what etcd's JSON gateway answers (see
 * etcd_json.h).
 *
 * Invariants:
 *  - Nothing here trusts its input: every field is checked for type and
 *    range before use, sizes are bounded before anything is allocated for
 *    them, and a failure leaves no memory behind (outputs are released).
 *  - Only proto3 JSON as grpc-gateway writes it is accepted: absent means
 *    zero/false/empty, int64 is a string, bytes are base64.
 *  - Error texts from etcd are copied, cut to DM_ETCD_TEXT_MAX, never
 *    interpreted as formats.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "kv/backend.h"
#include "kv/etcd_json.h"
#include "kv/kv.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

#include "util/banned.h"

/* ---- base64 ---- */

int dm_etcd_b64_decode(char **out, size_t *out_len, const char *s, size_t len, size_t max,
		       struct dm_err *err)
{
	struct dm_buf b;
	struct dm_err e;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (len / 4 > max / 3 + 1)
		return dm_err_set(err, DM_EPROTO,
				  "etcd answered %zu base64 characters where %zu "
				  "bytes at most fit",
				  len, max);
	dm_buf_init(&b, max);
	if ((rc = dm_base64_decode(&b, s, len, false, &e)) < 0) {
		dm_buf_release(&b);
		if (rc == DM_ENOMEM)
			return dm_err_set(err, rc, "%s", e.msg);
		return dm_err_set(err, DM_EPROTO, "etcd answered bad base64: %s", e.msg);
	}
	*out = dm_buf_detach(&b, out_len);
	if (!*out)
		return dm_err_set(err, DM_ENOMEM, "out of memory for %zu bytes", b.len);
	return 0;
}

/* ---- JSON fields ---- */

static int load(json_t **out, const char *body, size_t len, struct dm_err *err)
{
	json_error_t je;

	*out = NULL;
	if (len > DM_ETCD_MSG_MAX)
		return dm_err_set(err, DM_ETOOBIG, "etcd answered %zu bytes, over the limit of %zu",
				  len, DM_ETCD_MSG_MAX);
	*out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!*out)
		return dm_err_set(err, DM_EPROTO, "etcd answered malformed JSON: %s", je.text);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return dm_err_set(err, DM_EPROTO, "etcd answered JSON that is not an object");
	}
	return 0;
}

static int bad_field(struct dm_err *err, const char *name)
{
	return dm_err_set(err, DM_EPROTO, "etcd answered a bad '%s'", name);
}

/* Parses a decimal int64 as grpc-gateway writes it: no sign but '-', no
 * leading zeros, no spaces. */
static bool parse_i64(const char *s, size_t n, int64_t *out)
{
	bool neg = n > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0;
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

	if (i == n || n - i > 19 || (s[i] == '0' && (n - i > 1 || neg)))
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > limit)
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

/* An int64 field (absent: 0), at least min. */
static int get_i64(const json_t *obj, const char *name, int64_t min, int64_t *out,
		   struct dm_err *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = 0;
	if (!v)
		return min <= 0 ? 0 : bad_field(err, name);
	if (!json_is_string(v) || !parse_i64(json_string_value(v), json_string_length(v), out) ||
	    *out < min)
		return bad_field(err, name);
	return 0;
}

/* An int32 field written as a JSON number (absent: 0). */
static int get_int(const json_t *obj, const char *name, int *out, struct dm_err *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
		return bad_field(err, name);
	*out = (int)json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *obj, const char *name, bool *out, struct dm_err *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = false;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return bad_field(err, name);
	*out = json_is_true(v);
	return 0;
}

/* A member that, when present, has type t; *out NULL when absent. */
static int get_typed(const json_t *obj, const char *name, json_type t, json_t **out,
		     struct dm_err *err)
{
	json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (!v)
		return 0;
	if (json_typeof(v) != t)
		return bad_field(err, name);
	*out = v;
	return 0;
}

/* A text field, copied and cut to size; "" when absent. */
static int get_text(const json_t *obj, const char *name, char *out, size_t size, struct dm_err *err)
{
	const json_t *v = json_object_get(obj, name);
	size_t n;

	out[0] = '\0';
	if (!v)
		return 0;
	if (!json_is_string(v))
		return bad_field(err, name);
	n = json_string_length(v);
	if (n >= size)
		n = size - 1;
	memcpy(out, json_string_value(v), n); /* no NUL inside: jansson refuses \u0000 */
	out[n] = '\0';
	return 0;
}

static int get_header(const json_t *obj, int64_t *revision, struct dm_err *err)
{
	json_t *h;
	int rc;

	*revision = 0;
	if ((rc = get_typed(obj, "header", JSON_OBJECT, &h, err)) < 0)
		return rc;
	if (!h)
		return dm_err_set(err, DM_EPROTO, "etcd answered without a header");
	if ((rc = get_i64(h, "revision", 1, revision, err)) < 0)
		return rc;
	return 0;
}

/* A base64 field into a new buffer of at most max bytes. */
static int get_bytes(const json_t *obj, const char *name, bool required, size_t max, char **out,
		     size_t *out_len, struct dm_err *err)
{
	const json_t *v = json_object_get(obj, name);

	*out = NULL;
	*out_len = 0;
	if (!v && required)
		return bad_field(err, name);
	if (!v) {
		*out = calloc(1, 1);
		return *out ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
	}
	if (!json_is_string(v))
		return bad_field(err, name);
	return dm_etcd_b64_decode(out, out_len, json_string_value(v), json_string_length(v), max,
				  err);
}

/* An mvccpb.KeyValue; a delete event's has its key and mod_revision only. */
static int decode_kv(const json_t *o, struct dm_kv_kv *out, struct dm_err *err)
{
	int rc;

	dm_kv_kv_init(out);
	if (!json_is_object(o))
		return bad_field(err, "kv");
	if ((rc = get_bytes(o, "key", true, DM_KV_KEY_MAX, &out->key, &out->key_len, err)) < 0)
		goto fail;
	if (out->key_len == 0 || memchr(out->key, '\0', out->key_len)) {
		rc = dm_err_set(err, DM_EPROTO, "etcd answered a key dm cannot hold");
		goto fail;
	}
	if ((rc = get_bytes(o, "value", false, DM_KV_VALUE_MAX, &out->value, &out->value_len,
			    err)) < 0 ||
	    (rc = get_i64(o, "create_revision", 0, &out->create_revision, err)) < 0 ||
	    (rc = get_i64(o, "mod_revision", 1, &out->mod_revision, err)) < 0 ||
	    (rc = get_i64(o, "version", 0, &out->version, err)) < 0 ||
	    (rc = get_i64(o, "lease", 0, &out->lease, err)) < 0)
		goto fail;
	if (out->create_revision > out->mod_revision) {
		rc = bad_field(err, "create_revision");
		goto fail;
	}
	return 0;
fail:
	dm_kv_kv_release(out);
	return rc;
}

/* ---- answers ---- */

int dm_etcd_parse_error(struct dm_etcd_error *out, const char *body, size_t len, struct dm_err *err)
{
	json_t *root = NULL, *inner;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	inner = json_object_get(root, "error");
	if (json_is_object(inner)) {
		/* a stream's error */
		if ((rc = get_int(inner, "grpc_code", &out->grpc_code, err)) < 0 ||
		    (rc = get_text(inner, "message", out->message, sizeof(out->message), err)) < 0)
			goto done;
	} else {
		if ((rc = get_int(root, "code", &out->grpc_code, err)) < 0 ||
		    (rc = get_text(root, "message", out->message, sizeof(out->message), err)) < 0)
			goto done;
		if (!out->message[0] &&
		    (rc = get_text(root, "error", out->message, sizeof(out->message), err)) < 0)
			goto done;
	}
	if (out->grpc_code == 0 && !out->message[0])
		rc = dm_err_set(err, DM_EPROTO, "etcd answered an error without a code or text");
done:
	json_decref(root);
	return rc;
}

/* What etcd's error texts mean (etcdserver/api/v3rpc/rpctypes). */
static const struct {
	const char *text;
	int code;
	bool transient;
	bool not_applied;
} known_errors[] = {
	{"required revision has been compacted", DM_ECOMPACTED, false, true},
	{"required revision is a future revision", DM_EINVAL, false, true},
	{"requested lease not found", DM_ENOTFOUND, false, true},
	{"request is too large", DM_ETOOBIG, false, true},
	{"too many operations in txn request", DM_ETOOBIG, false, true},
	{"duplicate key given in txn request", DM_EINVAL, false, true},
	{"database space exceeded", DM_ETOOBIG, false, true},
	{"permission denied", DM_EPERM, false, true},
	{"user name is empty", DM_EPERM, false, true},
	{"invalid auth token", DM_EPERM, false, true},
	{"authentication failed", DM_EPERM, false, true},
	{"authentication is not enabled", DM_EPERM, false, true},
	{"no leader", DM_EUNAVAILABLE, true, true},
	{"raft proposal dropped", DM_EUNAVAILABLE, true, true},
	{"not capable", DM_EUNAVAILABLE, true, true},
	{"too many requests", DM_EBUSY, true, true},
	{"request timed out", DM_ETIMEOUT, true, false},
	{"leader changed", DM_EUNAVAILABLE, true, false},
	{"server stopped", DM_EUNAVAILABLE, true, false},
};

/* The rest by gRPC code (google.golang.org/grpc/codes). */
static const struct {
	int grpc_code;
	int code;
	bool transient;
	bool not_applied;
} grpc_errors[] = {
	{3, DM_EINVAL, false, true},        /* InvalidArgument */
	{4, DM_ETIMEOUT, true, false},      /* DeadlineExceeded */
	{5, DM_ENOTFOUND, false, true},     /* NotFound */
	{7, DM_EPERM, false, true},         /* PermissionDenied */
	{8, DM_ETOOBIG, false, true},       /* ResourceExhausted */
	{9, DM_ECONFLICT, false, true},     /* FailedPrecondition */
	{11, DM_EINVAL, false, true},       /* OutOfRange */
	{12, DM_EUNSUPPORTED, false, true}, /* Unimplemented */
	{14, DM_EUNAVAILABLE, true, false}, /* Unavailable */
	{16, DM_EPERM, false, true},        /* Unauthenticated */
};

int dm_etcd_error_code(const struct dm_etcd_error *e, bool *transient, bool *not_applied)
{
	for (size_t i = 0; i < sizeof(known_errors) / sizeof(known_errors[0]); i++) {
		if (strstr(e->message, known_errors[i].text)) {
			*transient = known_errors[i].transient;
			*not_applied = known_errors[i].not_applied;
			return known_errors[i].code;
		}
	}
	for (size_t i = 0; i < sizeof(grpc_errors) / sizeof(grpc_errors[0]); i++) {
		if (grpc_errors[i].grpc_code == e->grpc_code) {
			*transient = grpc_errors[i].transient;
			*not_applied = grpc_errors[i].not_applied;
			return grpc_errors[i].code;
		}
	}
	*transient = false;
	*not_applied = false;
	return DM_EIO;
}

bool dm_etcd_token_refused_text(const char *text)
{
	return strstr(text, "invalid auth token") || strstr(text, "user name is empty");
}

bool dm_etcd_token_refused(const struct dm_etcd_error *e)
{
	return dm_etcd_token_refused_text(e->message);
}

int dm_etcd_parse_token(char *out, size_t size, const char *body, size_t len, struct dm_err *err)
{
	json_t *root = NULL;
	const char *t;
	size_t n;
	int rc;

	out[0] = '\0';
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	t = json_string_value(json_object_get(root, "token"));
	n = t ? strlen(t) : 0;
	rc = n > 0 && n < size ? 0 : DM_EPROTO;
	for (size_t i = 0; !rc && i < n; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			rc = DM_EPROTO;
	if (rc)
		dm_err_set(err, DM_EPROTO, "etcd answered Authenticate without a usable token");
	else
		memcpy(out, t, n + 1);
	json_decref(root);
	return rc;
}

int dm_etcd_parse_header(int64_t *revision, const char *body, size_t len, struct dm_err *err)
{
	json_t *root = NULL;
	int rc;

	*revision = 0;
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	rc = get_header(root, revision, err);
	json_decref(root);
	return rc;
}

/* Appends the kvs array arr to out, checking their order. */
static int decode_kvs(struct dm_kv_kvs *out, const json_t *arr, struct dm_err *err)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		struct dm_kv_kv kv, *item;
		int rc;

		if ((rc = decode_kv(v, &kv, err)) < 0)
			return rc;
		if (kv.create_revision < 1 || kv.version < 1) {
			dm_kv_kv_release(&kv);
			return bad_field(err, "version");
		}
		if (out->len > 0) {
			const struct dm_kv_kv *last = &out->items[out->len - 1];

			if (dm_kv_key_cmp(last->key, last->key_len, kv.key, kv.key_len) >= 0) {
				dm_kv_kv_release(&kv);
				return dm_err_set(err, DM_EPROTO,
						  "etcd answered keys out of order");
			}
		}
		item = dm_kv_kvs_push(out, "", 0, NULL, 0, err);
		if (!item) {
			dm_kv_kv_release(&kv);
			return DM_ENOMEM;
		}
		dm_kv_kv_release(item);
		*item = kv;
	}
	return 0;
}

int dm_etcd_parse_range(struct dm_kv_kvs *out, int64_t *count, const char *body, size_t len,
			struct dm_err *err)
{
	json_t *root = NULL, *kvs;
	int rc;

	dm_kv_kvs_init(out);
	*count = 0;
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	if ((rc = get_header(root, &out->revision, err)) < 0 ||
	    (rc = get_bool(root, "more", &out->more, err)) < 0 ||
	    (rc = get_i64(root, "count", 0, count, err)) < 0 ||
	    (rc = get_typed(root, "kvs", JSON_ARRAY, &kvs, err)) < 0)
		goto done;
	if (kvs && (rc = decode_kvs(out, kvs, err)) < 0)
		goto done;
	if ((int64_t)out->len > *count && *count != 0) {
		rc = bad_field(err, "count");
		goto done;
	}
done:
	json_decref(root);
	if (rc < 0)
		dm_kv_kvs_release(out);
	return rc;
}

/* One of a txn's responses. */
static int decode_txn_response(struct dm_etcd_txn *out, const json_t *r, struct dm_err *err)
{
	json_t *v;
	int64_t n;
	int rc;

	if (!json_is_object(r) || json_object_size(r) != 1)
		return bad_field(err, "responses");
	if ((v = json_object_get(r, "response_put"))) {
		if (!json_is_object(v))
			return bad_field(err, "response_put");
		return 0;
	}
	if ((v = json_object_get(r, "response_delete_range"))) {
		if (!json_is_object(v))
			return bad_field(err, "response_delete_range");
		if ((rc = get_i64(v, "deleted", 0, &n, err)) < 0)
			return rc;
		if ((uint64_t)n > UINT64_MAX - out->deleted)
			return bad_field(err, "deleted");
		out->deleted += (uint64_t)n;
		return 0;
	}
	if ((v = json_object_get(r, "response_range"))) {
		struct dm_kv_kvs l;
		json_t *kvs;

		if (!json_is_object(v))
			return bad_field(err, "response_range");
		if ((rc = get_typed(v, "kvs", JSON_ARRAY, &kvs, err)) < 0)
			return rc;
		if (kvs && json_array_size(kvs) > 1)
			return bad_field(err, "kvs");
		dm_kv_kvs_init(&l);
		if (kvs && (rc = decode_kvs(&l, kvs, err)) < 0) {
			dm_kv_kvs_release(&l);
			return rc;
		}
		out->range_mod[out->nranges++] = l.len ? l.items[0].mod_revision : 0;
		dm_kv_kvs_release(&l);
		return 0;
	}
	return bad_field(err, "responses");
}

int dm_etcd_parse_txn(struct dm_etcd_txn *out, const char *body, size_t len, struct dm_err *err)
{
	json_t *root = NULL, *rs, *r;
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	if ((rc = get_header(root, &out->revision, err)) < 0 ||
	    (rc = get_bool(root, "succeeded", &out->succeeded, err)) < 0 ||
	    (rc = get_typed(root, "responses", JSON_ARRAY, &rs, err)) < 0)
		goto done;
	if (rs && json_array_size(rs) > DM_KV_TXN_MAX_OPS) {
		rc = bad_field(err, "responses");
		goto done;
	}
	if (rs) {
		json_array_foreach(rs, i, r)
		{
			if ((rc = decode_txn_response(out, r, err)) < 0)
				goto done;
			out->nresponses++;
		}
	}
done:
	json_decref(root);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int dm_etcd_parse_lease_grant(int64_t *id, int64_t *ttl, const char *body, size_t len,
			      struct dm_err *err)
{
	char text[DM_ETCD_TEXT_MAX];
	json_t *root = NULL;
	int64_t rev;
	int rc;

	*id = *ttl = 0;
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	if ((rc = get_header(root, &rev, err)) < 0 ||
	    (rc = get_text(root, "error", text, sizeof(text), err)) < 0)
		goto done;
	if (text[0]) {
		rc = dm_err_set(err, DM_EIO, "etcd granted no lease: %s", text);
		goto done;
	}
	if ((rc = get_i64(root, "ID", 1, id, err)) < 0 ||
	    (rc = get_i64(root, "TTL", 1, ttl, err)) < 0)
		goto done;
done:
	json_decref(root);
	if (rc < 0)
		*id = *ttl = 0;
	return rc;
}

int dm_etcd_parse_keepalive(int64_t *ttl, struct dm_etcd_error *e, const char *body, size_t len,
			    struct dm_err *err)
{
	json_t *root = NULL, *res;
	int64_t rev, id;
	int rc;

	*ttl = 0;
	memset(e, 0, sizeof(*e));
	if ((rc = load(&root, body, len, err)) < 0)
		return rc;
	if (json_object_get(root, "error")) {
		json_decref(root);
		rc = dm_etcd_parse_error(e, body, len, err);
		return rc < 0 ? rc : 1;
	}
	if ((rc = get_typed(root, "result", JSON_OBJECT, &res, err)) < 0)
		goto done;
	if (!res) {
		rc = bad_field(err, "result");
		goto done;
	}
	if ((rc = get_header(res, &rev, err)) < 0 || (rc = get_i64(res, "ID", 1, &id, err)) < 0 ||
	    (rc = get_i64(res, "TTL", -1, ttl, err)) < 0)
		goto done;
	if (*ttl < 0)
		*ttl = 0;
done:
	json_decref(root);
	if (rc < 0)
		*ttl = 0;
	return rc;
}

/* ---- watch lines ---- */

void dm_etcd_wmsg_release(struct dm_etcd_wmsg *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nevents; i++)
		dm_kv_kv_release(&m->events[i].kv);
	free(m->events);
	memset(m, 0, sizeof(*m));
}

static int decode_event(struct dm_etcd_event *out, const json_t *o, struct dm_err *err)
{
	const json_t *type;
	int rc;

	if (!json_is_object(o))
		return bad_field(err, "events");
	type = json_object_get(o, "type");
	if (!type || (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0))
		out->put = true;
	else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
		out->put = false;
	else
		return bad_field(err, "type");
	if ((rc = decode_kv(json_object_get(o, "kv"), &out->kv, err)) < 0)
		return rc;
	if (out->put && (out->kv.create_revision < 1 || out->kv.version < 1)) {
		dm_kv_kv_release(&out->kv);
		return bad_field(err, "version");
	}
	return 0;
}

static int decode_result(struct dm_etcd_wmsg *out, const json_t *res, struct dm_err *err)
{
	json_t *evs, *v;
	size_t i;
	int rc;

	if ((rc = get_typed(res, "header", JSON_OBJECT, &v, err)) < 0)
		return rc;
	if (v && (rc = get_i64(v, "revision", 0, &out->revision, err)) < 0)
		return rc;
	if ((rc = get_bool(res, "created", &out->created, err)) < 0 ||
	    (rc = get_bool(res, "canceled", &out->canceled, err)) < 0 ||
	    (rc = get_bool(res, "fragment", &out->fragment, err)) < 0 ||
	    (rc = get_i64(res, "compact_revision", 0, &out->compact_revision, err)) < 0 ||
	    (rc = get_text(res, "cancel_reason", out->cancel_reason, sizeof(out->cancel_reason),
			   err)) < 0 ||
	    (rc = get_typed(res, "events", JSON_ARRAY, &evs, err)) < 0)
		return rc;
	if (!evs || json_array_size(evs) == 0)
		return 0;
	out->events = calloc(json_array_size(evs), sizeof(*out->events));
	if (!out->events)
		return dm_err_set(err, DM_ENOMEM, "out of memory for %zu watch events",
				  json_array_size(evs));
	json_array_foreach(evs, i, v)
	{
		if ((rc = decode_event(&out->events[i], v, err)) < 0)
			return rc;
		out->nevents++;
		if (i > 0 && out->events[i].kv.mod_revision < out->events[i - 1].kv.mod_revision)
			return dm_err_set(err, DM_EPROTO,
					  "etcd answered watch events out of order");
	}
	return 0;
}

int dm_etcd_parse_watch(struct dm_etcd_wmsg *out, const char *line, size_t len, struct dm_err *err)
{
	json_t *root = NULL, *res;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = load(&root, line, len, err)) < 0)
		return rc;
	if (json_object_get(root, "error")) {
		json_decref(root);
		out->kind = DM_ETCD_WMSG_ERROR;
		return dm_etcd_parse_error(&out->error, line, len, err);
	}
	out->kind = DM_ETCD_WMSG_RESULT;
	if ((rc = get_typed(root, "result", JSON_OBJECT, &res, err)) < 0)
		goto done;
	if (!res) {
		rc = bad_field(err, "result");
		goto done;
	}
	rc = decode_result(out, res, err);
done:
	json_decref(root);
	if (rc < 0)
		dm_etcd_wmsg_release(out);
	return rc;
}
