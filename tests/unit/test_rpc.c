/*
 * test_rpc.c - JSON-RPC dispatch (rpc.c, rpc_server.c) and users and API
 * keys (auth.c).
 *
 * Dispatch is driven with request bodies as a client sends them and the
 * replies are parsed back, so the tests see exactly the wire format of
 * docs/api.md: the server.* methods through dm_rpc_dispatch, and a fake
 * method table through dm_rpc_dispatch_in for admin_only, deadlines and
 * handler errors. Auth tests use a fresh KV under /tmp each, removed at
 * the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "kv/kv.h"
#include "server/api/auth.h"
#include "server/api/rpc.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/hash.h"

#include "util/banned.h"

static const struct dm_caller admin = {"admin", true, false, ""};
static const struct dm_caller alice = {"alice", false, false, ""};

/* ---- helpers ---- */

/* Dispatches body (through tables, or the server's own when NULL) and
 * returns the parsed reply, checking what every reply must have. */
static json_t *call_in(const struct dm_rpc_method *const *tables, const struct dm_caller *caller,
		       const char *body)
{
	json_error_t jerr;
	json_t *reply;
	char *text;
	int status = 0;

	if (tables)
		text = dm_rpc_dispatch_in(tables, NULL, caller, body, strlen(body), &status);
	else
		text = dm_rpc_dispatch(NULL, caller, body, strlen(body), &status);
	assert_non_null(text);
	assert_int_equal(status, 200);
	reply = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!reply)
		fail_msg("reply is not JSON: %s: %s", jerr.text, text);
	free(text);
	assert_string_equal(json_string_value(json_object_get(reply, "jsonrpc")), "2.0");
	assert_non_null(json_object_get(reply, "id"));
	/* exactly one of result and error */
	assert_true(!json_object_get(reply, "result") != !json_object_get(reply, "error"));
	return reply;
}

static json_t *call(const struct dm_caller *caller, const char *body)
{
	return call_in(NULL, caller, body);
}

/* Checks that reply is an error with the JSON-RPC code and data.code. */
static void assert_error(json_t *reply, int code, const char *data_code)
{
	json_t *e = json_object_get(reply, "error");

	if (!e)
		fail_msg("expected error %d, got a result: %s", code,
			 json_dumps(reply, JSON_COMPACT));
	assert_int_equal(json_integer_value(json_object_get(e, "code")), code);
	assert_true(json_is_string(json_object_get(e, "message")));
	assert_true(json_string_length(json_object_get(e, "message")) > 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "data"), "code")),
			    data_code);
}

static const char *error_message(json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
}

/* ---- server.* through the real tables ---- */

static void test_server_version_answers_version_and_api(void **state)
{
	json_t *r = call(&alice, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"server.version\"}");
	json_t *res = json_object_get(r, "result");

	assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
	assert_string_equal(json_string_value(json_object_get(res, "version")), DM_VERSION);
	assert_int_equal(json_integer_value(json_object_get(res, "api")), 1);
	json_decref(r);
}

static void test_server_ping_names_the_caller(void **state)
{
	json_t *r = call(&alice, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"server.ping\","
				 "\"params\":{}}");

	assert_string_equal(json_string_value(json_object_get(r, "id")), "abc");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "result"), "user")), "alice");
	json_decref(r);
	r = call(&admin, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"server.ping\"}");
	assert_true(json_is_null(json_object_get(r, "id")));
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "result"), "user")), "admin");
	json_decref(r);
}

static void test_notification_is_answered_with_null_id(void **state)
{
	json_t *r = call(&alice, "{\"jsonrpc\":\"2.0\",\"method\":\"server.version\"}");

	assert_true(json_is_null(json_object_get(r, "id")));
	assert_non_null(json_object_get(r, "result"));
	json_decref(r);
}

/* ---- malformed requests ---- */

static void test_invalid_json_is_a_parse_error(void **state)
{
	static const char *const bodies[] = {
		"", "{", "not json", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"} x",
		/* duplicate keys are refused, not silently merged */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\",\"method\":\"dots.delete\"}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		json_t *r = call(&alice, bodies[i]);

		assert_error(r, -32700, "protocol_error");
		assert_true(json_is_null(json_object_get(r, "id")));
		json_decref(r);
	}
}

static void test_invalid_requests(void **state)
{
	static const char *const bodies[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1}",                              /* no method */
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":42}",                /* not a string */
		"{\"id\":1,\"method\":\"server.ping\"}",                       /* no version */
		"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"server.ping\"}",   /* wrong version */
		"{\"jsonrpc\":2.0,\"id\":1,\"method\":\"server.ping\"}",       /* not a string */
		"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"server.ping\"}",  /* bad id */
		"{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"server.ping\"}", /* bad id */
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"}]", /* a batch */
		"42",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		json_t *r = call(&alice, bodies[i]);
		json_t *id = json_object_get(r, "id");

		assert_error(r, -32600, "protocol_error");
		/* the id is echoed only when it is a valid one */
		assert_true(json_is_null(id) || json_integer_value(id) == 1);
		if (i >= 5 && i <= 6)
			assert_true(json_is_null(id));
		json_decref(r);
	}
}

static void test_batch_is_refused_by_name(void **state)
{
	json_t *r = call(&alice, "[]");

	assert_error(r, -32600, "protocol_error");
	assert_non_null(strstr(error_message(r), "batch"));
	json_decref(r);
}

static void test_unknown_method(void **state)
{
	json_t *r = call(&admin, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"dots.frobnicate\"}");

	assert_error(r, -32601, "unsupported");
	assert_string_equal(error_message(r), "no such method 'dots.frobnicate'");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 3);
	json_decref(r);
}

static void test_params_must_be_an_object(void **state)
{
	static const char *const params[] = {"[]", "[1,2]", "\"x\"", "3", "true", "null"};
	char body[256];

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		json_t *r;

		snprintf(body, sizeof(body),
			 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\",\"params\":%s}",
			 params[i]);
		r = call(&alice, body);
		assert_error(r, -32602, "invalid_argument");
		json_decref(r);
	}
}

/* ---- a fake table: admin_only, deadlines, handler errors ---- */

static int calls;

static int fake_deadline(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			 struct dm_err *err)
{
	calls++;
	*result = json_pack("{s:i}", "deadline", dm_rpc_deadline_ms());
	return 0;
}

static int fake_fail(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		     struct dm_err *err)
{
	const char *dot;
	int rc;

	calls++;
	rc = dm_rpc_param_str(&dot, params, "dot", true, err);
	if (rc)
		return rc;
	/* a result set on the way to an error must not leak or be sent */
	*result = json_object();
	return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'", dot);
}

static int fake_no_result(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			  struct dm_err *err)
{
	calls++;
	return 0;
}

static int fake_bad_utf8(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			 struct dm_err *err)
{
	calls++;
	return dm_err_set(err, DM_EIO, "cannot read 'caf\xc3': bad");
}

static int fake_silent_error(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			     struct dm_err *err)
{
	calls++;
	return DM_EBUSY;
}

static const struct dm_rpc_method fake_methods[] = {
	{"fake.admin", fake_deadline, true, 0},
	{"fake.deadline", fake_deadline, false, 1234},
	{"fake.fail", fake_fail, false, 0},
	{"fake.noresult", fake_no_result, false, 0},
	{"fake.badutf8", fake_bad_utf8, false, 0},
	{"fake.silent", fake_silent_error, false, 0},
	/* shadowed by the first table's server.ping */
	{"server.ping", fake_deadline, false, 0},
	{NULL, NULL, false, 0},
};

static const struct dm_rpc_method *const fake_tables[] = {dm_rpc_server_methods, fake_methods,
							  NULL};

static void test_admin_only_is_refused_to_others(void **state)
{
	json_t *r;

	calls = 0;
	r = call_in(fake_tables, &alice, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fake.admin\"}");
	assert_error(r, -32000, "permission_denied");
	assert_int_equal(calls, 0);
	json_decref(r);
	r = call_in(fake_tables, &admin, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fake.admin\"}");
	assert_non_null(json_object_get(r, "result"));
	assert_int_equal(calls, 1);
	json_decref(r);
}

static void test_deadline_is_the_methods_during_its_call(void **state)
{
	json_t *r;

	r = call_in(fake_tables, &alice,
		    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fake.deadline\"}");
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(r, "result"), "deadline")), 1234);
	json_decref(r);
	assert_int_equal(dm_rpc_deadline_ms(), DM_RPC_DEADLINE_DEFAULT_MS);
	r = call_in(fake_tables, &admin, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fake.admin\"}");
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(r, "result"), "deadline")),
		DM_RPC_DEADLINE_DEFAULT_MS);
	json_decref(r);
}

static void test_handler_errors_carry_code_and_message(void **state)
{
	json_t *r;

	r = call_in(fake_tables, &alice, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fake.fail\","
					 "\"params\":{\"dot\":\"shop\"}}");
	assert_error(r, -32000, "not_found");
	assert_string_equal(error_message(r), "no such dot 'shop'");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
	json_decref(r);

	r = call_in(fake_tables, &alice, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fake.fail\"}");
	assert_error(r, -32000, "invalid_argument");
	assert_string_equal(error_message(r), "missing parameter 'dot'");
	json_decref(r);

	r = call_in(fake_tables, &alice, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fake.fail\","
					 "\"params\":{\"dot\":5}}");
	assert_error(r, -32000, "invalid_argument");
	assert_string_equal(error_message(r), "parameter 'dot' must be a string");
	json_decref(r);

	r = call_in(fake_tables, &alice,
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fake.noresult\"}");
	assert_error(r, -32000, "internal");
	json_decref(r);

	r = call_in(fake_tables, &alice, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fake.silent\"}");
	assert_error(r, -32000, "busy");
	json_decref(r);

	/* a message that is not UTF-8 still gives a valid reply */
	r = call_in(fake_tables, &alice,
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"fake.badutf8\"}");
	assert_error(r, -32000, "io_error");
	assert_string_equal(error_message(r), "cannot read 'caf?': bad");
	json_decref(r);
}

static void test_earlier_table_wins(void **state)
{
	json_t *r;

	calls = 0;
	r = call_in(fake_tables, &alice, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server.ping\"}");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "result"), "user")), "alice");
	assert_int_equal(calls, 0);
	json_decref(r);
}

static void test_param_str(void **state)
{
	json_t *p = json_pack("{s:s, s:i, s:n}", "dot", "shop", "n", 3, "nothing");
	const char *v = "x";
	struct dm_err err;

	dm_err_clear(&err);
	assert_int_equal(dm_rpc_param_str(&v, p, "dot", true, &err), 0);
	assert_string_equal(v, "shop");
	assert_int_equal(dm_rpc_param_str(&v, p, "branch", false, &err), 0);
	assert_null(v);
	assert_int_equal(dm_rpc_param_str(&v, p, "nothing", false, &err), 0);
	assert_null(v);
	assert_int_equal(dm_rpc_param_str(&v, p, "branch", true, &err), DM_EINVAL);
	assert_string_equal(err.msg, "missing parameter 'branch'");
	assert_int_equal(dm_rpc_param_str(&v, p, "n", false, &err), DM_EINVAL);
	assert_string_equal(err.msg, "parameter 'n' must be a string");
	json_decref(p);
}

static void test_error_body(void **state)
{
	char *text = dm_rpc_error_body(-32000, DM_EPERM, "invalid user name or API key");
	json_t *r = json_loads(text, 0, NULL);

	assert_non_null(r);
	assert_error(r, -32000, "permission_denied");
	assert_true(json_is_null(json_object_get(r, "id")));
	assert_string_equal(error_message(r), "invalid user name or API key");
	json_decref(r);
	free(text);
}

/* ---- auth ---- */

struct fx {
	char dir[64];
	struct dm_kv *kv;
};

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct dm_kv_lmdb_opts opts;
	struct dm_err err;

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dm-test-rpc.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	dm_kv_lmdb_opts_default(&opts);
	opts.sync = false;
	opts.map_size = 16 << 20;
	if (dm_kv_open_lmdb_opts(&fx->kv, fx->dir, &opts, &err)) {
		print_error("open: %s\n", err.msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	dm_kv_free(fx->kv);
	dm_remove_tree(fx->dir, NULL);
	free(fx);
	return 0;
}

static void test_verify_accepts_the_right_key_only(void **state)
{
	struct fx *fx = *state;
	char key[DM_API_KEY_LEN + 1], other[DM_API_KEY_LEN + 1];
	struct dm_caller c;
	struct dm_err err;

	dm_err_clear(&err);
	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key, "admin", true, 0, &err), 0);
	assert_int_equal(strlen(key), DM_API_KEY_LEN);
	assert_int_equal(strspn(key, "0123456789abcdef"), DM_API_KEY_LEN);
	assert_int_equal(dm_auth_user_create(fx->kv, NULL, other, "alice", false, 0, &err), 0);
	assert_string_not_equal(key, other);

	memset(&c, 0, sizeof(c));
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", key, &err), 0);
	assert_string_equal(c.user, "admin");
	assert_true(c.admin);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "alice", other, &err), 0);
	assert_string_equal(c.user, "alice");
	assert_false(c.admin);

	/* another user's key, a key one digit off, a prefix, nothing */
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", other, &err), DM_EPERM);
	assert_string_equal(err.msg, DM_AUTH_DENIED_MSG);
	key[10] = key[10] == '0' ? '1' : '0';
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", key, &err), DM_EPERM);
	key[10] = '\0';
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", key, &err), DM_EPERM);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", "", &err), DM_EPERM);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", NULL, &err), DM_EPERM);
	assert_string_equal(err.msg, DM_AUTH_DENIED_MSG);
}

static void test_unknown_user_is_refused_like_a_wrong_key(void **state)
{
	struct fx *fx = *state;
	char key[DM_API_KEY_LEN + 1];
	struct dm_caller c;
	struct dm_err wrong, unknown, bad;

	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key, "admin", true, 0, &wrong), 0);
	key[0] = key[0] == 'a' ? 'b' : 'a';
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", key, &wrong), DM_EPERM);
	key[0] = key[0] == 'a' ? 'b' : 'a';
	/* the right key under another name */
	assert_int_equal(dm_auth_verify(fx->kv, &c, "bob", key, &unknown), DM_EPERM);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "../users/admin", key, &bad), DM_EPERM);
	assert_int_equal(dm_auth_verify(fx->kv, &c, NULL, key, &bad), DM_EPERM);
	assert_int_equal(wrong.code, unknown.code);
	assert_string_equal(wrong.msg, unknown.msg);
	assert_string_equal(wrong.msg, bad.msg);
}

static void test_kv_holds_the_hash_not_the_key(void **state)
{
	struct fx *fx = *state;
	char key[DM_API_KEY_LEN + 1], hex[DM_OID_HEXSZ + 1];
	struct dm_kv_kv rec;
	struct dm_err err;
	json_t *doc;
	dm_oid h;

	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key, "admin", true, 0, &err), 0);
	dm_kv_kv_init(&rec);
	assert_int_equal(dm_kv_get(fx->kv, &rec, DM_KV_USERS "admin", &err), 0);
	assert_null(strstr(rec.value, key));
	doc = json_loads(rec.value, 0, NULL);
	assert_non_null(doc);
	dm_hash(&h, key, strlen(key));
	dm_oid_hex(hex, &h);
	assert_string_equal(json_string_value(json_object_get(doc, "key_sha256")), hex);
	assert_string_equal(json_string_value(json_object_get(doc, "name")), "admin");
	assert_true(json_is_true(json_object_get(doc, "admin")));
	json_decref(doc);
	dm_kv_kv_release(&rec);
}

static void test_create_refuses_duplicates_and_bad_names(void **state)
{
	struct fx *fx = *state;
	char key[DM_API_KEY_LEN + 1], key2[DM_API_KEY_LEN + 1];
	struct dm_caller c;
	struct dm_err err;

	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key, "admin", true, 0, &err), 0);
	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key2, "admin", false, 0, &err),
			 DM_EEXISTS);
	assert_string_equal(err.msg, "user 'admin' already exists");
	/* the first key still works and the user is still an admin */
	assert_int_equal(dm_auth_verify(fx->kv, &c, "admin", key, &err), 0);
	assert_true(c.admin);
	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key2, "a/b", false, 0, &err), DM_EINVAL);
	assert_int_equal(dm_auth_user_create(fx->kv, NULL, key2, "", false, 0, &err), DM_EINVAL);
}

static void test_key_reset_replaces_the_key(void **state)
{
	struct fx *fx = *state;
	char old[DM_API_KEY_LEN + 1], fresh[DM_API_KEY_LEN + 1];
	struct dm_caller c;
	struct dm_err err;

	assert_int_equal(dm_auth_user_create(fx->kv, NULL, old, "alice", false, 0, &err), 0);
	assert_int_equal(
		dm_auth_key_reset(fx->kv, NULL, fresh, "alice", DM_AUTH_KEEP_LIFETIME, true, &err),
		0);
	assert_string_not_equal(old, fresh);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "alice", old, &err), DM_EPERM);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "alice", fresh, &err), 0);
	assert_false(c.admin);
	assert_int_equal(
		dm_auth_key_reset(fx->kv, NULL, fresh, "nobody", DM_AUTH_KEEP_LIFETIME, true, &err),
		DM_ENOTFOUND);
	assert_string_equal(err.msg, "no such user 'nobody'");
}

/* A key past its expiry is refused, saying so only to whoever shows it;
 * a user resetting its own key may not lengthen its life. */
static void test_expired_key_is_refused_with_its_expiry(void **state)
{
	struct fx *fx = *state;
	char key[DM_API_KEY_LEN + 1], other[DM_API_KEY_LEN + 1], hex[DM_OID_HEXSZ + 1], rec[256];
	struct dm_auth_user u;
	struct dm_caller c;
	struct dm_err err, wrong;
	dm_oid h;

	assert_int_equal(dm_auth_user_create(fx->kv, &u, key, "bob", false, 3600, &err), 0);
	assert_true(u.expires > 0 && u.lifetime == 3600);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "bob", key, &err), 0);
	/* the same key, expired a second after the epoch */
	dm_hash(&h, key, strlen(key));
	dm_oid_hex(hex, &h);
	snprintf(rec, sizeof(rec),
		 "{\"name\":\"bob\",\"key_sha256\":\"%s\",\"expires\":1,\"lifetime\":60}", hex);
	assert_int_equal(dm_kv_put(fx->kv, NULL, DM_KV_USERS "bob", rec, strlen(rec), 0, &err), 0);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "bob", key, &err), DM_EPERM);
	assert_string_equal(err.msg, "API key of user 'bob' expired at 1970-01-01T00:00:01Z; ask "
				     "an admin for a new one ('dm user reset-key bob')");
	/* a wrong key learns nothing */
	assert_int_equal(dm_id_api_key(other, &err), 0);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "bob", other, &wrong), DM_EPERM);
	assert_string_equal(wrong.msg, DM_AUTH_DENIED_MSG);
	/* bob may not lengthen it himself; keeping the lifetime works */
	assert_int_equal(dm_auth_key_reset(fx->kv, &u, key, "bob", 0, false, &err), DM_EPERM);
	assert_int_equal(dm_auth_key_reset(fx->kv, &u, key, "bob", 61, false, &err), DM_EPERM);
	assert_int_equal(
		dm_auth_key_reset(fx->kv, &u, key, "bob", DM_AUTH_KEEP_LIFETIME, false, &err), 0);
	assert_int_equal(u.lifetime, 60);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "bob", key, &err), 0);
	/* an admin may */
	assert_int_equal(dm_auth_key_reset(fx->kv, &u, key, "bob", 0, true, &err), 0);
	assert_int_equal(u.expires, 0);
	assert_int_equal(dm_auth_user_remove(fx->kv, "bob", &err), 0);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "bob", key, &err), DM_EPERM);
	assert_string_equal(err.msg, DM_AUTH_DENIED_MSG);
	assert_int_equal(dm_auth_user_remove(fx->kv, "bob", &err), DM_ENOTFOUND);
}

static void test_malformed_record_is_refused(void **state)
{
	struct fx *fx = *state;
	char key[DM_API_KEY_LEN + 1], hex[DM_OID_HEXSZ + 1], rec[256];
	struct dm_caller c;
	struct dm_err err;
	dm_oid h;

	assert_int_equal(dm_id_api_key(key, &err), 0);
	dm_hash(&h, key, strlen(key));
	dm_oid_hex(hex, &h);
	/* a record whose name does not match its key */
	snprintf(rec, sizeof(rec), "{\"name\":\"root\",\"key_sha256\":\"%s\",\"admin\":true}", hex);
	assert_int_equal(dm_kv_put(fx->kv, NULL, DM_KV_USERS "eve", rec, strlen(rec), 0, &err), 0);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "eve", key, &err), DM_EPERM);
	/* a truncated hash */
	snprintf(rec, sizeof(rec), "{\"name\":\"eve\",\"key_sha256\":\"%.10s\"}", hex);
	assert_int_equal(dm_kv_put(fx->kv, NULL, DM_KV_USERS "eve", rec, strlen(rec), 0, &err), 0);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "eve", key, &err), DM_EPERM);
	/* the same record, well formed, works */
	snprintf(rec, sizeof(rec), "{\"name\":\"eve\",\"key_sha256\":\"%s\"}", hex);
	assert_int_equal(dm_kv_put(fx->kv, NULL, DM_KV_USERS "eve", rec, strlen(rec), 0, &err), 0);
	assert_int_equal(dm_auth_verify(fx->kv, &c, "eve", key, &err), 0);
	assert_false(c.admin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_version_answers_version_and_api),
		cmocka_unit_test(test_server_ping_names_the_caller),
		cmocka_unit_test(test_notification_is_answered_with_null_id),
		cmocka_unit_test(test_invalid_json_is_a_parse_error),
		cmocka_unit_test(test_invalid_requests),
		cmocka_unit_test(test_batch_is_refused_by_name),
		cmocka_unit_test(test_unknown_method),
		cmocka_unit_test(test_params_must_be_an_object),
		cmocka_unit_test(test_admin_only_is_refused_to_others),
		cmocka_unit_test(test_deadline_is_the_methods_during_its_call),
		cmocka_unit_test(test_handler_errors_carry_code_and_message),
		cmocka_unit_test(test_earlier_table_wins),
		cmocka_unit_test(test_param_str),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test_setup_teardown(test_verify_accepts_the_right_key_only, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_user_is_refused_like_a_wrong_key,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_kv_holds_the_hash_not_the_key, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_create_refuses_duplicates_and_bad_names,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_key_reset_replaces_the_key, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_expired_key_is_refused_with_its_expiry,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_record_is_refused, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
