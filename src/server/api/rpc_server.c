/*
 * rpc_server.c - the server.* methods: what the server is and who the
 * caller is. They touch no dot and need no actor.
 */
#include <jansson.h>

#include "server/api/api.h"
#include "server/api/rpc.h"

#include "util/banned.h"

static int server_version(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
			  struct dm_err *err)
{
	/* data_dir: a client on this host learns where the links that dm
	 * mount makes lead (the paths dots.path answers are inside it) */
	*result = json_pack("{s:s, s:i, s:s}", "version", DM_VERSION, "api", 1, "data_dir",
			    ctx->env && ctx->env->data_dir ? ctx->env->data_dir : "");
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

static int server_ping(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		       struct dm_err *err)
{
	*result = json_pack("{s:s}", "user", ctx->caller->user);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

const struct dm_rpc_method dm_rpc_server_methods[] = {
	{"server.version", server_version, false, 0},
	{"server.ping", server_ping, false, 0},
	{NULL, NULL, false, 0},
};
