/*
 * rpc_users.c - the users.* methods of the API (docs/api.md): add a user,
 * give one (or oneself) a new API key, remove one, list them, and tell a
 * caller who it is.
 *
 * Invariants: users.add, users.list and users.remove are admin_only in the
 * table, so the dispatcher refuses other callers before a handler runs;
 * users.reset_key lets a caller who is not an admin reset only its own
 * key, and never lengthen its life. A new API key exists in clear only in
 * the reply that hands it out (the KV keeps its SHA-256, see auth.h), and
 * the buffer that held it is wiped. A user's dots are changed only by
 * requests to their actors (removing a user hands its dots over and
 * takes it off every dot it collaborates on, then removes its record).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api/api.h"
#include "server/api/auth.h"
#include "server/api/rpc.h"
#include "server/dots/access.h"
#include "server/dots/registry.h"
#include "util/buf.h"
#include "util/id.h"

#include "util/banned.h"

/* Adds "expires" (text) to j when the user's key expires. */
static void add_expiry(json_t *j, const struct dm_auth_user *u)
{
	char when[32];

	if (!u->expires)
		return;
	dm_auth_time_text(when, sizeof(when), u->expires);
	json_object_set_new(j, "expires", json_string(when));
}

/* {"name":NAME,"api_key":KEY,"expires"?:TIME}; wipes key. */
static int key_result(json_t **result, const struct dm_auth_user *u, char *key, struct dm_err *err)
{
	*result = json_pack("{s:s, s:s}", "name", u->name, "api_key", key);
	memset(key, 0, DM_API_KEY_LEN + 1);
	if (*result)
		add_expiry(*result, u);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
}

/* params.expires_in: seconds a new key lives (0: for ever); *out stays as
 * it is when absent. */
static int lifetime_param(int64_t *out, json_t *params, struct dm_err *err)
{
	json_t *v = json_object_get(params, "expires_in");

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > DM_AUTH_LIFETIME_MAX)
		return dm_err_set(
			err, DM_EINVAL,
			"parameter 'expires_in' must be a number of seconds from 1 to %lld, "
			"or 0 for a key that never expires",
			(long long)DM_AUTH_LIFETIME_MAX);
	*out = (int64_t)json_integer_value(v);
	return 0;
}

static int m_add(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	char key[DM_API_KEY_LEN + 1];
	struct dm_auth_user u;
	int64_t lifetime = 0;
	const char *name;
	int rc = dm_rpc_param_str(&name, params, "name", true, err);

	if (!rc)
		rc = lifetime_param(&lifetime, params, err);
	if (!rc)
		rc = dm_auth_user_create(ctx->env->kv, &u, key, name, false, lifetime, err);
	if (rc)
		return rc;
	return key_result(result, &u, key, err);
}

/* A user resets its own key (no name, or its own); an admin anyone's. */
static int m_reset_key(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		       struct dm_err *err)
{
	char key[DM_API_KEY_LEN + 1];
	struct dm_auth_user u;
	int64_t lifetime = DM_AUTH_KEEP_LIFETIME;
	const char *name;
	int rc = dm_rpc_param_str(&name, params, "name", false, err);

	if (!rc)
		rc = lifetime_param(&lifetime, params, err);
	if (rc)
		return rc;
	if (!name)
		name = ctx->caller->user;
	if (!ctx->caller->admin && strcmp(name, ctx->caller->user))
		return dm_err_set(
			err, DM_EPERM,
			"user '%s' may not reset the key of user '%s': only an admin may; "
			"'dm user reset-key' without a name resets your own",
			ctx->caller->user, name);
	rc = dm_auth_key_reset(ctx->env->kv, &u, key, name, lifetime, ctx->caller->admin, err);
	if (rc)
		return rc;
	return key_result(result, &u, key, err);
}

/* Appends "ns/name" of v to list (a JSON array). */
static void add_name(json_t *list, const struct dm_dot_view *v)
{
	char shown[DM_DOT_NAME_TEXT_MAX];

	json_array_append_new(list, json_string(dm_dot_name_text(shown, &v->name)));
}

/* Asks every dot user `name` owns to be owned by `to` instead, and every
 * dot it collaborates on to forget it; the names of the dots handed over
 * go into handed (a JSON array). */
static int hand_over(const struct dm_rpc_ctx *ctx, const char *name, const char *to, json_t *handed,
		     struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	int rc = 0;

	for (size_t i = 0; i < snap->n && !rc; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);
		struct dm_caller who = {.admin = false};
		struct dm_dot_req *req = NULL;
		json_t *res = NULL;
		int role;

		snprintf(who.user, sizeof(who.user), "%s", name);
		role = dm_dot_role_of(v, &who);
		if (role == DM_ROLE_OWNER) {
			req = dm_dot_req_new(DM_DOT_OP_SET_OWNER);
			req->user = dm_xstrdup(to);
			add_name(handed, v);
		} else if (role != DM_ROLE_NONE) {
			req = dm_dot_req_new(DM_DOT_OP_REMOVE_COLLABORATOR);
			req->user = dm_xstrdup(name);
		}
		dm_dot_view_unref(v);
		if (req)
			rc = dm_dot_call(&res, snap->e[i].dot, req, dm_rpc_deadline_ms(), err);
		if (rc == DM_ENOTFOUND) /* deleted meanwhile, or no longer a collaborator */
			rc = 0;
		json_decref(res);
	}
	dm_registry_snap_unref(snap);
	return rc;
}

/* The dots user `name` owns, as a JSON array of names. */
static json_t *owned_dots(const struct dm_rpc_ctx *ctx, const char *name)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	struct dm_caller who = {.admin = false};
	json_t *list = json_array();

	snprintf(who.user, sizeof(who.user), "%s", name);
	for (size_t i = 0; i < snap->n; i++) {
		struct dm_dot_view *v = dm_dot_handle_view(snap->e[i].dot);

		if (v->state == DM_DOT_READY && dm_dot_role_of(v, &who) == DM_ROLE_OWNER)
			add_name(list, v);
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	return list;
}

/*
 * Removes user `name`. A user who owns dots is refused unless `force`:
 * then its dots are handed to the admin who removes it (they keep their
 * names: a dot's owner is its record's, not its namespace's). The user
 * also leaves every dot it collaborates on, so that a new user of the
 * same name inherits nothing.
 */
static int m_remove(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		    struct dm_err *err)
{
	struct dm_caller who;
	json_t *owned = NULL, *handed = NULL, *force = json_object_get(params, "force");
	const char *name;
	int rc = dm_rpc_param_str(&name, params, "name", true, err);

	if (!rc && force && !json_is_boolean(force))
		rc = dm_err_set(err, DM_EINVAL, "parameter 'force' must be true or false");
	if (!rc && !strcmp(name, ctx->caller->user))
		rc = dm_err_set(err, DM_EINVAL,
				"user '%s' may not remove themself: ask another admin", name);
	if (!rc && dm_auth_lookup(ctx->env->kv, &who, name, NULL))
		rc = dm_err_set(err, DM_ENOTFOUND, "no such user '%s'", name);
	if (rc)
		return rc;
	owned = owned_dots(ctx, name);
	if (json_array_size(owned) && !json_is_true(force)) {
		char names[256];
		size_t n = json_array_size(owned), used = 0, i;
		json_t *e;

		names[0] = '\0';
		json_array_foreach(owned, i, e)
		{
			int k = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
					 json_string_value(e));

			if (k < 0 || (size_t)k >= sizeof(names) - used) {
				snprintf(names + used, sizeof(names) - used, ", ...");
				break;
			}
			used += (size_t)k;
		}
		json_decref(owned);
		return dm_err_set(err, DM_EBUSY,
				  "user '%s' owns %zu dot%s (%s): delete %s first, or give --force "
				  "to hand %s to '%s'",
				  name, n, n == 1 ? "" : "s", names, n == 1 ? "it" : "them",
				  n == 1 ? "it" : "them", ctx->caller->user);
	}
	json_decref(owned);
	handed = json_array();
	rc = hand_over(ctx, name, ctx->caller->user, handed, err);
	if (!rc)
		rc = dm_auth_user_remove(ctx->env->kv, name, err);
	if (rc) {
		json_decref(handed);
		return rc;
	}
	*result = json_pack("{s:s, s:o, s:s}", "name", name, "handed_over", handed, "to",
			    ctx->caller->user);
	return *result ? 0 : dm_err_set(err, DM_ENOMEM, "out of memory");
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
	for (size_t i = 0; list && i < n; i++) {
		json_t *u = json_pack("{s:s, s:b}", "name", users[i].name, "admin", users[i].admin);

		if (u)
			add_expiry(u, &users[i]);
		if (json_array_append_new(list, u)) {
			json_decref(list);
			list = NULL;
		}
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
	{"users.add", m_add, true, 0},        {"users.reset_key", m_reset_key, false, 0},
	{"users.remove", m_remove, true, 0},  {"users.list", m_list, true, 0},
	{"users.whoami", m_whoami, false, 0}, {NULL, NULL, false, 0},
};
