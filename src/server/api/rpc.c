/*
 * rpc.c - JSON-RPC 2.0 dispatch: parse and check one request, find its
 * method, run the handler with the method's deadline, encode the answer.
 *
 * Invariants: every call of dm_rpc_dispatch returns exactly one response
 * body (a result or an error object), also for notifications (requests
 * without an id, which JSON-RPC would leave unanswered; see docs/api.md);
 * every error object carries data.code, a JSON name from util/err.h's
 * table; a handler runs only for a well-formed request whose caller may
 * call it, with params an object (an empty one when absent or null), or
 * any JSON value for dotmesh's methods (which take what Go's codec took).
 */
#include "server/api/rpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/catalog.h"
#include "util/fsutil.h"
#include "util/log.h"

#include "util/banned.h"

/* JSON-RPC 2.0's own error codes, and the one dm uses for its errors. */
enum {
	RPC_PARSE_ERROR = -32700,
	RPC_INVALID_REQUEST = -32600,
	RPC_METHOD_NOT_FOUND = -32601,
	RPC_INVALID_PARAMS = -32602,
	RPC_DM_ERROR = -32000,
};

static _Thread_local int current_deadline_ms = DM_RPC_DEADLINE_DEFAULT_MS;

int dm_rpc_deadline_ms(void)
{
	return current_deadline_ms;
}

/* A JSON string of message; bytes that are not valid UTF-8 (a message cut
 * in the middle of a character, a file name) become '?'. */
static json_t *message_string(const char *message)
{
	json_t *s = json_string(message);
	char *copy;

	if (s)
		return s;
	copy = strdup(message);
	if (!copy)
		return NULL;
	for (unsigned char *p = (unsigned char *)copy; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	s = json_string(copy);
	free(copy);
	return s;
}

static json_t *error_object(int jsonrpc_code, int code, const char *message)
{
	return json_pack("{s:i, s:o, s:{s:s}}", "code", jsonrpc_code, "message",
			 message_string(message), "data", "code", dm_err_json_name(code));
}

/* Encodes a reply; takes result or error (one of them is set). */
static char *encode_reply(json_t *id, json_t *result, json_t *error)
{
	static const char fallback[] =
		"{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
		"\"message\":\"cannot encode the reply\",\"data\":{\"code\":\"internal\"}}}";
	json_t *r = json_object();
	char *text = NULL;

	if (r && (result || error) && json_object_set_new(r, "jsonrpc", json_string("2.0")) == 0 &&
	    json_object_set(r, "id", id ? id : json_null()) == 0) {
		if (error)
			json_object_set_new(r, "error", error);
		else
			json_object_set_new(r, "result", result);
		error = result = NULL;
		text = json_dumps(r, JSON_COMPACT);
	}
	json_decref(result);
	json_decref(error);
	json_decref(r);
	if (!text) {
		dm_error("rpc: cannot encode a reply");
		text = strdup(fallback);
	}
	return text;
}

char *dm_rpc_error_body(int jsonrpc_code, int code, const char *message)
{
	return encode_reply(NULL, NULL, error_object(jsonrpc_code, code, message));
}

static const struct dm_rpc_method *find_method(const struct dm_rpc_method *const *tables,
					       const char *name)
{
	for (; *tables; tables++)
		for (const struct dm_rpc_method *m = *tables; m->name; m++)
			if (strcmp(m->name, name) == 0)
				return m;
	return NULL;
}

static bool valid_id(const json_t *id)
{
	return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

/*
 * Checks the request and finds its method. Returns 0, or a JSON-RPC code
 * with *code_out (a DM_E* code) and err's message describing the problem.
 */
static int check_request(json_t *req, const struct dm_rpc_method *const *tables, bool aliases,
			 const struct dm_caller *caller, const struct dm_rpc_method **method_out,
			 int *code_out, struct dm_err *err)
{
	const struct dm_rpc_method *any_params = NULL;
	json_t *version = json_object_get(req, "jsonrpc");
	json_t *method = json_object_get(req, "method");
	json_t *params = json_object_get(req, "params");
	json_t *id = json_object_get(req, "id");
	const struct dm_rpc_method *m;
	const char *name;

	*code_out = DM_EPROTO;
	if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0) {
		dm_err_set(err, DM_EPROTO, "request member \"jsonrpc\" must be \"2.0\"");
		return RPC_INVALID_REQUEST;
	}
	if (id && !valid_id(id)) {
		dm_err_set(err, DM_EPROTO, "request id must be a string, a number or null");
		return RPC_INVALID_REQUEST;
	}
	if (!json_is_string(method)) {
		dm_err_set(err, DM_EPROTO, "request member \"method\" must be a string");
		return RPC_INVALID_REQUEST;
	}
	name = json_string_value(method);
	m = find_method(tables, name);
	if (!m && aliases)
		m = any_params = dm_rpc_dotmesh_find(name);
	if (params && !json_is_object(params) && !any_params) {
		*code_out = DM_EINVAL;
		dm_err_set(err, DM_EINVAL, "params must be an object");
		return RPC_INVALID_PARAMS;
	}
	if (!m) {
		*code_out = DM_EUNSUPPORTED;
		dm_err_set(err, DM_EUNSUPPORTED, "no such method '%.100s'", name);
		return RPC_METHOD_NOT_FOUND;
	}
	if (m->admin_only && !caller->admin) {
		*code_out = DM_EPERM;
		dm_err_set(err, DM_EPERM, "method '%s' needs an admin user", m->name);
		return RPC_DM_ERROR;
	}
	*method_out = m;
	return 0;
}

/* Runs m's handler; returns its result or an error object (new reference). */
static json_t *call_method(const struct dm_rpc_method *m, const struct dm_api_env *env,
			   const struct dm_caller *caller, json_t *params, int *rc_out)
{
	struct dm_rpc_ctx ctx = {.env = env, .caller = caller, .method = m};
	struct dm_err err;
	json_t *result = NULL, *own_params = NULL;
	int64_t start = dm_now_monotonic_ns();
	int rc;

	dm_err_clear(&err);
	if (!params || json_is_null(params))
		params = own_params = json_object();
	current_deadline_ms = m->deadline_ms > 0 ? m->deadline_ms : DM_RPC_DEADLINE_DEFAULT_MS;
	rc = params ? m->handler(&ctx, params, &result, &err)
		    : dm_err_set(&err, DM_ENOMEM, "out of memory");
	current_deadline_ms = DM_RPC_DEADLINE_DEFAULT_MS;
	json_decref(own_params);
	if (rc == 0 && !result)
		rc = dm_err_set(&err, DM_EINTERNAL, "method '%s' returned no result", m->name);
	if (rc > 0)
		rc = dm_err_set(&err, DM_EINTERNAL, "method '%s' returned %d", m->name, rc);
	dm_debug("rpc %s by '%s': %s in %.3f ms", m->name, caller->user,
		 rc ? dm_err_json_name(rc) : "ok", (double)(dm_now_monotonic_ns() - start) / 1e6);
	dm_metric_observe_since(&dm_m_rpc_duration, m->name, NULL, start);
	*rc_out = rc;
	if (rc == 0)
		return result;
	json_decref(result);
	if (!err.msg[0])
		dm_err_set(&err, rc, "%s", dm_err_json_name(rc));
	return error_object(RPC_DM_ERROR, rc, err.msg);
}

/* One request in dm_rpc_requests_total: m's name from its table (never
 * the caller's text; "unknown" without one), and its outcome. */
static void count_request(const struct dm_rpc_method *m, int rc)
{
	dm_metric_add(&dm_m_rpc_requests, m ? m->name : "unknown", rc ? dm_err_json_name(rc) : "ok",
		      1);
}

static char *dispatch(const struct dm_rpc_method *const *tables, bool aliases,
		      const struct dm_api_env *env, const struct dm_caller *caller,
		      const char *body, size_t len, int *http_status_out)
{
	const struct dm_rpc_method *m = NULL;
	json_error_t jerr;
	json_t *req, *id = NULL, *out;
	struct dm_err err;
	char *text;
	int code, jcode, rc;

	*http_status_out = 200;
	dm_err_clear(&err);
	req = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!req) {
		dm_err_set(&err, DM_EPROTO, "cannot parse request: %s (line %d, column %d)",
			   jerr.text, jerr.line, jerr.column);
		count_request(NULL, DM_EPROTO);
		return encode_reply(NULL, NULL, error_object(RPC_PARSE_ERROR, DM_EPROTO, err.msg));
	}
	if (!json_is_object(req)) {
		out = error_object(RPC_INVALID_REQUEST, DM_EPROTO,
				   json_is_array(req) ? "batch requests are not supported"
						      : "request must be a JSON object");
		json_decref(req);
		count_request(NULL, DM_EPROTO);
		return encode_reply(NULL, NULL, out);
	}
	id = json_object_get(req, "id");
	if (id && !valid_id(id))
		id = NULL;
	jcode = check_request(req, tables, aliases, caller, &m, &code, &err);
	if (jcode) {
		dm_debug("rpc refused for '%s': %s", caller->user, err.msg);
		out = error_object(jcode, code, err.msg);
		rc = code;
	} else {
		out = call_method(m, env, caller, json_object_get(req, "params"), &rc);
	}
	count_request(m, rc);
	text = rc ? encode_reply(id, NULL, out) : encode_reply(id, out, NULL);
	json_decref(req);
	return text;
}

char *dm_rpc_dispatch_in(const struct dm_rpc_method *const *tables, const struct dm_api_env *env,
			 const struct dm_caller *caller, const char *body, size_t len,
			 int *http_status_out)
{
	return dispatch(tables, false, env, caller, body, len, http_status_out);
}

/* dm's own methods; dotmesh's (made of them) after them */
static const struct dm_rpc_method *const own_tables[] = {
	dm_rpc_server_methods,
	dm_rpc_dot_methods,
	dm_rpc_user_methods,
	dm_rpc_transfer_methods,
	dm_rpc_cluster_methods,
	dm_rpc_space_methods,
	NULL,
};

char *dm_rpc_dispatch(const struct dm_api_env *env, const struct dm_caller *caller,
		      const char *body, size_t len, int *http_status_out)
{
	return dispatch(own_tables, true, env, caller, body, len, http_status_out);
}

int dm_rpc_call(const struct dm_rpc_ctx *ctx, const char *name, json_t *params, json_t **result,
		struct dm_err *err)
{
	const struct dm_rpc_method *m = find_method(own_tables, name);
	struct dm_rpc_ctx sub = *ctx;
	json_t *own_params = NULL;
	int saved = current_deadline_ms, rc;

	*result = NULL;
	if (!m)
		return dm_err_set(err, DM_EINTERNAL, "no method '%s'", name);
	if (m->admin_only && !ctx->caller->admin)
		return dm_err_set(err, DM_EPERM, "method '%s' needs an admin user", m->name);
	if (!params)
		params = own_params = json_object();
	sub.method = m;
	current_deadline_ms = m->deadline_ms > 0 ? m->deadline_ms : DM_RPC_DEADLINE_DEFAULT_MS;
	rc = m->handler(&sub, params, result, err);
	current_deadline_ms = saved;
	json_decref(own_params);
	if (rc) {
		json_decref(*result);
		*result = NULL;
	} else if (!*result) {
		rc = dm_err_set(err, DM_EINTERNAL, "method '%s' returned no result", name);
	}
	return rc;
}

int dm_rpc_param_str(const char **out, json_t *params, const char *name, bool required,
		     struct dm_err *err)
{
	json_t *v = params ? json_object_get(params, name) : NULL;

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return dm_err_set(err, DM_EINVAL, "missing parameter '%s'", name);
		return 0;
	}
	if (!json_is_string(v))
		return dm_err_set(err, DM_EINVAL, "parameter '%s' must be a string", name);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return dm_err_set(err, DM_EINVAL, "parameter '%s' must not contain NUL", name);
	*out = json_string_value(v);
	return 0;
}
