/*
 * rpc_users.c - the users.* methods of the API (docs/api.md): add a user,
 * give one a new API key, list them, and tell a caller who it is.
 *
 * Invariants: every method but users.whoami is admin_only in the table, so
 * the dispatcher refuses other callers before a handler runs; a new API key
 * exists in clear only in the reply that hands it out (the KV keeps its
 * SHA-256, see auth.h), and the buffer that held it is wiped.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/api.h"
#include "server/api/auth.h"
#include "server/api/rpc.h"
#include "util/id.h"

#include "util/banned.h"

/* {"name":NAME,"api_key":KEY}; wipes key. */
static int key_result(json_t **result, const char *name, char *key, struct dm_err *err)
{
	*result = json_pack("{s:s, s:s}", "name", name, "api_key", key);
	memset(key, 0, DM_API_KEY_LEN + 1);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

static int m_add(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	char key[DM_API_KEY_LEN + 1];
	const char *name;
	int rc = dm_rpc_param_str(&name, params, "name", true, err);

	if (!rc)
		rc = dm_auth_user_create(ctx->env->kv, key, name, false, err);
	if (rc)
		return rc;
	return key_result(result, name, key, err);
}

static int m_reset_key(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		       struct dm_err *err)
{
	char key[DM_API_KEY_LEN + 1];
	const char *name;
	int rc = dm_rpc_param_str(&name, params, "name", true, err);

	if (!rc)
		rc = dm_auth_key_reset(ctx->env->kv, key, name, err);
	if (rc)
		return rc;
	return key_result(result, name, key, err);
}

static int m_list(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_auth_user *users = NULL;
	json_t *list = NULL;
	size_t n = 0;
	int rc = dm_auth_user_list(ctx->env->kv, &users, &n, err);

	if (rc)
		return rc;
	list = json_array();
	for (size_t i = 0; list && i < n; i++)
		if (json_array_append_new(list, json_pack("{s:s, s:b}", "name", users[i].name,
							  "admin", users[i].admin))) {
			json_decref(list);
			list = NULL;
		}
	free(users);
	*result = list ? json_pack("{s:o}", "users", list) : NULL;
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

static int m_whoami(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	*result = json_pack("{s:s, s:b}", "name", ctx->caller->user, "admin", ctx->caller->admin);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

const struct dm_rpc_method dm_rpc_user_methods[] = {
	{"users.add", m_add, true, 0},   {"users.reset_key", m_reset_key, true, 0},
	{"users.list", m_list, true, 0}, {"users.whoami", m_whoami, false, 0},
	{NULL, NULL, false, 0},
};
