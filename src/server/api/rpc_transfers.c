/*
 * rpc_transfers.c - the transfers.* methods of the API (docs/api.md):
 * push, pull (and clone), show, list.
 *
 * Invariants: push and pull answer every error found before data moves
 * themselves (bad names, an unknown or forbidden local dot, a clone onto
 * an existing name, an unreachable remote, a wrong key, no common transfer
 * version) and otherwise return the new transfer's id at once; the
 * transfer itself runs in the transfers actor's job (transfer.c). A user
 * who is not an admin sees only the transfers they started.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "remote/remote.h"
#include "server/api/api.h"
#include "server/api/rpc.h"
#include "server/dots/access.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "server/transfers/transfer.h"
#include "util/names.h"

#include "util/tls.h"

#include "util/banned.h"

/* Reads params.remote: {"host","port","user","api_key"} (and "name", and
 * "ca": the CA the remote's certificate must chain to, pinned by the
 * client; without it the remote is spoken to in plain HTTP, which only a
 * server on loopback serves). */
static int remote_param(struct dm_transfer_spec *spec, json_t *params, struct dm_err *err)
{
	json_t *r = json_object_get(params, "remote"), *port;
	int rc;

	if (!json_is_object(r))
		return dm_err_set(
			err, DM_EINVAL,
			"missing parameter 'remote' ({\"host\",\"port\",\"user\",\"api_key\"})");
	rc = dm_rpc_param_str(&spec->host, r, "host", true, err);
	if (!rc)
		rc = dm_rpc_param_str(&spec->user, r, "user", true, err);
	if (!rc)
		rc = dm_rpc_param_str(&spec->api_key, r, "api_key", true, err);
	if (!rc)
		rc = dm_rpc_param_str(&spec->remote_name, r, "name", false, err);
	if (!rc)
		rc = dm_rpc_param_str(&spec->ca, r, "ca", false, err);
	if (rc)
		return dm_err_prefix(err, "remote");
	if (spec->ca && (strlen(spec->ca) > DM_TLS_PEM_MAX || !strstr(spec->ca, "-----BEGIN ")))
		return dm_err_set(err, DM_EINVAL, "remote: 'ca' is not a PEM certificate");
	port = json_object_get(r, "port");
	if (!port)
		spec->port = DM_DEFAULT_PORT;
	else if (json_is_integer(port) && json_integer_value(port) > 0 &&
		 json_integer_value(port) <= 65535)
		spec->port = (int)json_integer_value(port);
	else
		return dm_err_set(err, DM_EINVAL, "remote: invalid port");
	if (!spec->host[0] || strlen(spec->host) > 253 || strpbrk(spec->host, "/?#@ "))
		return dm_err_set(err, DM_EINVAL, "remote: invalid host '%.64s'", spec->host);
	if (!dm_name_part_valid(spec->user, strlen(spec->user)))
		return dm_err_set(err, DM_EINVAL, "remote: invalid user name '%.64s'", spec->user);
	return 0;
}

static int bool_param(bool *out, json_t *params, const char *name, struct dm_err *err)
{
	json_t *v = json_object_get(params, name);

	*out = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return dm_err_set(err, DM_EINVAL, "parameter '%s' must be true or false", name);
	*out = json_is_true(v);
	return 0;
}

static int name_param(struct dm_dot_name *out, json_t *params, const char *key, bool required,
		      bool *given, struct dm_err *err)
{
	const char *s = NULL;
	int rc = dm_rpc_param_str(&s, params, key, required, err);

	if (given)
		*given = s != NULL;
	if (rc || !s)
		return rc;
	return dm_dot_name_parse(out, s, err);
}

/* The parameters push and pull share. */
static int common_params(struct dm_transfer_spec *spec, const struct dm_rpc_ctx *ctx,
			 json_t *params, struct dm_err *err)
{
	int rc = remote_param(spec, params, err);

	if (!rc)
		rc = dm_rpc_param_str(&spec->branch, params, "branch", false, err);
	if (!rc && spec->branch)
		rc = dm_branch_name_check(spec->branch, err);
	if (!rc)
		rc = bool_param(&spec->stash, params, "stash", err);
	spec->caller = ctx->caller->user;
	spec->trusted = ctx->caller->admin;
	return rc;
}

/* The local dot, if it exists and the caller may do `what` to it (which
 * needs role need, access.h): *found, and its branch check. DM_EPERM,
 * naming what is missing, for a dot the caller may not. */
static int check_local(const struct dm_rpc_ctx *ctx, const struct dm_dot_name *name,
		       const char *branch, int need, const char *what, bool *found,
		       struct dm_err *err)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(ctx->env->registry);
	const struct dm_registry_entry *e = dm_registry_find(snap, name);
	char shown[DM_DOT_NAME_TEXT_MAX];
	int rc = 0;

	dm_dot_name_text(shown, name);
	*found = e != NULL;
	if (e) {
		struct dm_dot_view *v = dm_dot_handle_view(e->dot);

		rc = dm_dot_may(v, ctx->caller, need, what, err);
		if (!rc && branch && !dm_dot_view_branch(v, branch))
			rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", shown,
					branch);
		dm_dot_view_unref(v);
	}
	dm_registry_snap_unref(snap);
	return rc;
}

/* Reaches the remote within the connect timeout and checks the key and
 * the protocol version, so that the call itself reports those. */
static int check_remote(const struct dm_transfer_spec *spec, struct dm_err *err)
{
	struct dm_remote_addr addr = {spec->host, spec->port, spec->user, spec->api_key, NULL,
				      spec->ca,   spec->node};
	struct dm_remote_conn *conn = NULL;
	int rc = dm_remote_open(&conn, &addr, err);

	if (!rc)
		rc = dm_remote_hello(conn, err);
	dm_remote_free(conn);
	return rc;
}

static int begin(const struct dm_rpc_ctx *ctx, const struct dm_transfer_spec *spec, json_t **result,
		 struct dm_err *err)
{
	char id[DM_UUID_LEN + 1];
	int rc = check_remote(spec, err);

	if (!rc)
		rc = dm_transfers_begin(ctx->env->transfers, spec, id, err);
	if (!rc)
		*result = json_pack("{s:s}", "id", id);
	return rc;
}

static int m_push(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_transfer_spec spec;
	char shown[DM_DOT_NAME_TEXT_MAX];
	bool found = false, given = false;
	int rc;

	memset(&spec, 0, sizeof(spec));
	spec.direction = DM_TRANSFER_PUSH;
	rc = common_params(&spec, ctx, params, err);
	if (!rc)
		rc = name_param(&spec.dot, params, "dot", true, NULL, err);
	if (!rc)
		rc = name_param(&spec.remote_dot, params, "remote_dot", false, &given, err);
	if (rc)
		return rc;
	if (!given)
		spec.remote_dot = spec.dot;
	rc = check_local(ctx, &spec.dot, spec.branch, DM_ROLE_READ, "push from", &found, err);
	if (!rc && !found)
		rc = dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'",
				dm_dot_name_text(shown, &spec.dot));
	return rc ? rc : begin(ctx, &spec, result, err);
}

static int m_pull(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	struct dm_transfer_spec spec;
	char shown[DM_DOT_NAME_TEXT_MAX];
	bool found = false, given = false;
	int rc;

	memset(&spec, 0, sizeof(spec));
	spec.direction = DM_TRANSFER_PULL;
	rc = common_params(&spec, ctx, params, err);
	if (!rc)
		rc = name_param(&spec.remote_dot, params, "remote_dot", true, NULL, err);
	if (!rc)
		rc = name_param(&spec.dot, params, "dot", false, &given, err);
	if (!rc)
		rc = bool_param(&spec.clone, params, "clone", err);
	if (rc)
		return rc;
	if (!given)
		spec.dot = spec.remote_dot;
	dm_dot_name_text(shown, &spec.dot);
	rc = check_local(ctx, &spec.dot, NULL, DM_ROLE_WRITE, "pull into", &found, err);
	if (rc)
		return rc;
	if (spec.clone && found)
		return dm_err_set(err, DM_EEXISTS,
				  "dot '%s' exists; clone into another name with --local-name",
				  shown);
	if (spec.clone && (rc = dm_dot_may_create(&spec.dot, ctx->caller, err)))
		return rc;
	if (!spec.clone && !found)
		return dm_err_set(err, DM_ENOTFOUND, "no such dot '%s'; use 'dm clone' to make it",
				  shown);
	return begin(ctx, &spec, result, err);
}

static int m_show(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	const char *id;
	int rc = dm_rpc_param_str(&id, params, "id", true, err);

	if (rc)
		return rc;
	return dm_transfers_show(ctx->env->transfers, id,
				 ctx->caller->admin ? NULL : ctx->caller->user, result, err);
}

static int m_list(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result, struct dm_err *err)
{
	*result = dm_transfers_list(ctx->env->transfers,
				    ctx->caller->admin ? NULL : ctx->caller->user);
	return 0;
}

const struct dm_rpc_method dm_rpc_transfer_methods[] = {
	{"transfers.push", m_push, false, 0},
	{"transfers.pull", m_pull, false, 0},
	{"transfers.show", m_show, false, 0},
	{"transfers.list", m_list, false, 0},
	{NULL, NULL, false, 0},
};
