/*
 * rpc.h - JSON-RPC 2.0 dispatch: one table of methods (rpc.c), each a
 * handler that takes params and fills a result or an error.
 *
 * A handler runs on an HTTP worker thread. It never touches a dot's state:
 * it sends the dot's actor a request and waits for the answer with the
 * method's deadline (DESIGN.md §3). It returns 0 with *result set (a new
 * reference the dispatcher takes), or a DM_E* code with err filled; the
 * dispatcher turns that into a JSON-RPC error whose data.code is the code's
 * JSON name.
 */
#ifndef DM_SERVER_API_RPC_H
#define DM_SERVER_API_RPC_H

#include <jansson.h>
#include <stdbool.h>

#include "server/dots/caller.h"
#include "server/dots/dot.h"
#include "util/err.h"

struct dm_api_env;

struct dm_rpc_method;

struct dm_rpc_ctx {
	const struct dm_api_env *env;
	const struct dm_caller *caller;
	const struct dm_rpc_method *method; /* the method being handled */
};

typedef int (*dm_rpc_handler)(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			      struct dm_err *err);

struct dm_rpc_method {
	const char *name; /* "dots.create" */
	dm_rpc_handler handler;
	bool admin_only;
	int deadline_ms; /* 0: the default, 30 s */
};

/* The method tables of each API group, NULL-name terminated. */
extern const struct dm_rpc_method dm_rpc_server_methods[];
extern const struct dm_rpc_method dm_rpc_dot_methods[];
extern const struct dm_rpc_method dm_rpc_user_methods[];
extern const struct dm_rpc_method dm_rpc_transfer_methods[];
extern const struct dm_rpc_method dm_rpc_cluster_methods[];
extern const struct dm_rpc_method dm_rpc_space_methods[];
/*
 * dotmesh's method `name` ("DotmeshRPC.List"), mapped onto dm's
 * (rpc_dotmesh.c), or NULL. Its params may be any JSON value, not only an
 * object: dotmesh's methods take what Go's JSON-RPC codec took (a bare id,
 * an array of one object). Borrowed, static.
 */
const struct dm_rpc_method *dm_rpc_dotmesh_find(const char *name);

/*
 * Handles one request body (the bytes of a JSON-RPC request) for caller and
 * returns the response body (malloc'ed, NUL-terminated). Never NULL except
 * when out of memory. *http_status_out gets 200 (JSON-RPC errors travel in
 * the body).
 */
char *dm_rpc_dispatch(const struct dm_api_env *env, const struct dm_caller *caller,
		      const char *body, size_t len, int *http_status_out);

/*
 * As dm_rpc_dispatch, looking methods up in tables (a NULL-terminated list
 * of NULL-name-terminated tables, searched in order) instead of the
 * server's own, without dotmesh's. For tests.
 */
char *dm_rpc_dispatch_in(const struct dm_rpc_method *const *tables, const struct dm_api_env *env,
			 const struct dm_caller *caller, const char *body, size_t len,
			 int *http_status_out);

/*
 * The body of a JSON-RPC error reply with id null, for answers the HTTP
 * layer gives before dispatch (401, 413): jsonrpc_code is -32000 for dm
 * errors. malloc'ed; NULL only when out of memory.
 */
char *dm_rpc_error_body(int jsonrpc_code, int code, const char *message);

/*
 * Calls dm's own method `name` (not an alias) for the caller of ctx, as if
 * it had been asked for: its admin check, its handler, its deadline.
 * params is borrowed (NULL: an empty object). For handlers that are made
 * of other methods (rpc_dotmesh.c).
 */
int dm_rpc_call(const struct dm_rpc_ctx *ctx, const char *name, json_t *params, json_t **result,
		struct dm_err *err);

/* The default deadline of a method, in ms. */
#define DM_RPC_DEADLINE_DEFAULT_MS DM_DOT_CALL_DEADLINE_MS

/* Helpers for handlers: a required/optional string param; DM_EINVAL with a
 * message naming the param when missing or not a string. */
int dm_rpc_param_str(const char **out, json_t *params, const char *name, bool required,
		     struct dm_err *err);
/* The method's deadline (ms) for the method being handled on this thread. */
int dm_rpc_deadline_ms(void);

#endif
