/*
 * rpc_dotmesh.c - dotmesh's API as aliases: the DotmeshRPC.* methods that
 * tools written against dotmesh called, with dotmesh's parameters and
 * results, each mapped onto dm's own methods (docs/api.md, "dotmesh's
 * methods", says what differs).
 *
 * The table at the end is the whole mapping: a dotmesh method, the dm
 * method it becomes, and the functions that turn dotmesh's params into
 * dm's and dm's result into dotmesh's. A method made of several of dm's
 * (one that names a dot by an id, say) has a `run` of its own instead.
 *
 * Invariants: every alias reaches the server only through dm_rpc_call, so
 * it is checked exactly as the dm method it maps to (the caller's role in
 * the dot, admins only where dm says so), and answers within that
 * method's deadline; nothing here touches a dot. dotmesh's params are read
 * as Go's encoding/json read them: member names in any case, and a params
 * array of one element is that element (gorilla's JSON-RPC 2.0 codec).
 * In dotmesh's API branch "" is master; ids are dotmesh's: a dot's master
 * branch has the dot's id, another branch the id dm_id_branch derives.
 */
#include "server/api/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"
#include "server/dots/dot.h"
#include "util/names.h"

#include "util/banned.h"

struct alias;

/* dotmesh's params (unwrapped) into dm's, a new reference */
typedef int params_fn(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err);
/* dm's result into dotmesh's, a new reference; in is dotmesh's params */
typedef int result_fn(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		      struct dm_err *err);
/* the whole method, for the ones made of several calls */
typedef int run_fn(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err);

/* One dotmesh method: what the dispatcher sees (its name, alias_call),
 * then what it is made of. */
struct alias {
	struct dm_rpc_method method; /* first: ctx->method is this */
	const char *dm;              /* the dm method, or NULL with run */
	params_fn *params;
	result_fn *result;
	run_fn *run;
};

/* ---- reading dotmesh's params -------------------------------------- */

/* A member of o by name, in any case (Go's encoding/json matches so). */
static json_t *member(json_t *o, const char *name)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v)
	{
		if (!strcasecmp(key, name))
			return v;
	}
	return NULL;
}

/* A string member, "" when missing or null; DM_EINVAL when of another type. */
static int str(const char **out, json_t *o, const char *name, struct dm_err *err)
{
	json_t *v = member(o, name);

	*out = "";
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return dm_err_set(err, DM_EINVAL, "parameter '%s' must be a string", name);
	*out = json_string_value(v);
	return 0;
}

/* "NS/NAME" of params' ns_key and name_key (NS "" is admin), checked. */
static int dot_of(char out[DM_DOT_NAME_TEXT_MAX], json_t *in, const char *ns_key,
		  const char *name_key, struct dm_err *err)
{
	struct dm_dot_name n;
	const char *ns, *name;
	int rc = str(&ns, in, ns_key, err);

	if (!rc)
		rc = str(&name, in, name_key, err);
	if (rc)
		return rc;
	if (!*name)
		return dm_err_set(err, DM_EINVAL, "missing parameter '%s'", name_key);
	snprintf(out, DM_DOT_NAME_TEXT_MAX, "%.64s/%.64s", *ns ? ns : DM_DEFAULT_NAMESPACE, name);
	return dm_dot_name_parse(&n, out, err);
}

/* dotmesh's branch name: "" is master; checked. */
static int branch_of(const char **out, json_t *in, const char *key, struct dm_err *err)
{
	int rc = str(out, in, key, err);

	if (!rc && !**out)
		*out = "master";
	return rc ? rc : dm_branch_name_check(*out, err);
}

/* ---- dm's answers, as dotmesh's ------------------------------------ */

static const char *s_of(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static json_int_t i_of(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* The entry of branch name in a DOT object's branches, or NULL. */
static json_t *branch_entry(json_t *dot, const char *name)
{
	json_t *b;
	size_t i;

	json_array_foreach(json_object_get(dot, "branches"), i, b)
	{
		if (!strcmp(s_of(b, "name"), name))
			return b;
	}
	return NULL;
}

/* dotmesh's DotmeshVolume of branch b of dot (a DOT object). */
static json_t *volume_json(json_t *dot, json_t *b)
{
	json_t *fork = json_object_get(dot, "fork_of");
	const char *name = s_of(b, "name");

	return json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:I, s:I, s:I, s:{}, s:{}, s:s, s:s}", "Id",
			 s_of(b, "id"), "Name", "Namespace", s_of(dot, "namespace"), "Name",
			 s_of(dot, "name"), "Branch", strcmp(name, "master") ? name : "", "Master",
			 s_of(dot, "server"), "SizeBytes", i_of(b, "size"), "DirtyBytes",
			 i_of(b, "dirty"), "CommitCount", i_of(b, "commits"), "ServerStates",
			 "ServerStatuses", "ForkParentId", s_of(fork, "id"), "ForkParentSnapshotId",
			 s_of(fork, "commit"));
}

/* dotmesh's [{"Name","Id"}] of the containers of a DOT object that use
 * branch (those pinned to it, and when it is current those that follow). */
static json_t *containers_json(json_t *dot, const char *branch)
{
	bool current = !strcmp(s_of(dot, "branch"), branch);
	json_t *out = json_array(), *c;
	size_t i;

	json_array_foreach(json_object_get(dot, "containers"), i, c)
	{
		const char *pinned = s_of(c, "branch");

		if (*pinned ? !strcmp(pinned, branch) : current)
			json_array_append_new(out, json_pack("{s:s, s:s}", "Name", s_of(c, "name"),
							     "Id", s_of(c, "id")));
	}
	return out;
}

/* The dot (a DOT object, new reference) and branch whose dotmesh id is id,
 * among the dots the caller may read. */
static int find_id(const struct dm_rpc_ctx *ctx, const char *id, json_t **dot_out,
		   const char **branch_out, struct dm_err *err)
{
	json_t *res = NULL, *d, *b;
	size_t i, j;
	int rc = dm_rpc_call(ctx, "dots.list", json_pack("{s:b}", "refresh", 0), &res, err);

	*dot_out = NULL;
	if (rc)
		return rc;
	json_array_foreach(json_object_get(res, "dots"), i, d)
	{
		json_array_foreach(json_object_get(d, "branches"), j, b)
		{
			if (!strcmp(s_of(b, "id"), id)) {
				*dot_out = json_incref(d);
				*branch_out = s_of(b, "name"); /* lives as *dot_out */
				json_decref(res);
				return 0;
			}
		}
	}
	json_decref(res);
	return dm_err_set(err, DM_ENOTFOUND, "no dot or branch with id '%s'", id);
}

/* A params that is a bare string (Get, GetTransfer), or a {"Id": ...}. */
static int bare_id(const char **out, json_t *in, const char *key, struct dm_err *err)
{
	if (json_is_string(in)) {
		*out = json_string_value(in);
		return 0;
	}
	return str(out, in, key, err);
}

/* ---- params ----------------------------------------------------------- */

/* {Namespace, Name} -> {dot} */
static int p_volume(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	int rc = dot_of(dot, in, "Namespace", "Name", err);

	(void)ctx;
	*out = rc ? NULL : json_pack("{s:s}", "dot", dot);
	return rc;
}

/* {Namespace, Name, Branch} -> {dot, branch} */
static int p_volume_branch(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
			   struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	const char *branch;
	int rc = dot_of(dot, in, "Namespace", "Name", err);

	(void)ctx;
	if (!rc)
		rc = branch_of(&branch, in, "Branch", err);
	*out = rc ? NULL : json_pack("{s:s, s:s}", "dot", dot, "branch", branch);
	return rc;
}

/* {RemoteNamespace, RemoteFilesystemName} -> {dot} */
static int p_volume_deduce(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
			   struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	int rc = dot_of(dot, in, "RemoteNamespace", "RemoteFilesystemName", err);

	(void)ctx;
	*out = rc ? NULL : json_pack("{s:s}", "dot", dot);
	return rc;
}

/* CommitArgs {Namespace, Name, Branch, Message, Metadata}; the metadata
 * entry "#commit-id" is the commit's id */
static int p_commit(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	json_t *meta = member(in, "Metadata"), *mine = json_object(), *v;
	const char *message, *key;
	int rc = p_volume_branch(ctx, in, out, err);

	if (!rc)
		rc = str(&message, in, "Message", err);
	if (!rc && meta && !json_is_null(meta) && !json_is_object(meta))
		rc = dm_err_set(err, DM_EINVAL, "parameter 'Metadata' must be an object");
	json_object_foreach(json_is_object(meta) ? meta : NULL, key, v)
	{
		if (rc)
			break;
		if (!strcmp(key, DM_COMMIT_ID_META)) {
			if (!json_is_string(v))
				rc = dm_err_set(err, DM_EINVAL, "'%s' must be a string",
						DM_COMMIT_ID_META);
			else
				json_object_set(*out, "id", v);
		} else {
			json_object_set(mine, key, v);
		}
	}
	if (!rc) {
		json_object_set_new(*out, "message", json_string(message));
		json_object_set_new(*out, "metadata", mine);
		mine = NULL;
	}
	json_decref(mine);
	return rc;
}

/* {Namespace, Name, Branch, SnapshotId} -> {dot, branch, ref} */
static int p_rollback(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	const char *id;
	int rc = p_volume_branch(ctx, in, out, err);

	if (!rc)
		rc = str(&id, in, "SnapshotId", err);
	if (!rc)
		json_object_set_new(*out, "ref", json_string(id));
	return rc;
}

/* {Namespace, Name, NewBranchName} -> {dot, branch} */
static int p_switch(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	const char *branch;
	int rc = dot_of(dot, in, "Namespace", "Name", err);

	(void)ctx;
	if (!rc)
		rc = branch_of(&branch, in, "NewBranchName", err);
	*out = rc ? NULL : json_pack("{s:s, s:s}", "dot", dot, "branch", branch);
	return rc;
}

/* GetTransfer's bare transfer id -> {id} */
static int p_transfer_id(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	const char *id;
	int rc = bare_id(&id, in, "TransferRequestId", err);

	(void)ctx;
	*out = rc ? NULL : json_pack("{s:s}", "id", id);
	return rc;
}

/* ---- results ---------------------------------------------------------- */

static int r_true(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		  struct dm_err *err)
{
	(void)ctx, (void)in, (void)res, (void)err;
	*out = json_true();
	return 0;
}

/* VersionInfo */
static int r_version(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		     struct dm_err *err)
{
	(void)ctx, (void)in, (void)err;
	*out = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:b}", "installed_version",
			 s_of(res, "version"), "current_version", s_of(res, "version"),
			 "current_release_date", 0, "current_download_url", "",
			 "current_changelog_url", "", "project_website", "", "outdated", 0);
	return 0;
}

/* SafeUser: dm's users have a name only (no id, e-mail or metadata) */
static int r_user(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		  struct dm_err *err)
{
	(void)ctx, (void)in, (void)err;
	*out = json_pack("{s:s, s:s, s:s, s:s, s:{}}", "Id", s_of(res, "name"), "Name",
			 s_of(res, "name"), "Email", "", "EmailHash", "", "Metadata");
	return 0;
}

/* map[namespace]map[name]X of every dot, X from its master branch */
static int list_map(json_t *res, bool with_containers, json_t **out)
{
	json_t *d;
	size_t i;

	*out = json_object();
	json_array_foreach(json_object_get(res, "dots"), i, d)
	{
		const char *ns = s_of(d, "namespace");
		json_t *sub = json_object_get(*out, ns), *b = branch_entry(d, "master"), *v;

		if (!b)
			continue;
		if (!sub) {
			sub = json_object();
			json_object_set_new(*out, ns, sub);
		}
		v = volume_json(d, b);
		if (with_containers)
			v = json_pack("{s:o, s:o}", "Volume", v, "Containers",
				      containers_json(d, "master"));
		json_object_set_new(sub, s_of(d, "name"), v);
	}
	return 0;
}

static int r_list(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		  struct dm_err *err)
{
	(void)ctx, (void)in, (void)err;
	return list_map(res, false, out);
}

static int r_list_containers(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
			     struct dm_err *err)
{
	(void)ctx, (void)in, (void)err;
	return list_map(res, true, out);
}

/* Lookup: the id of the branch params name (dm's dots.show answered) */
static int r_lookup(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		    struct dm_err *err)
{
	const char *branch;
	json_t *b;
	int rc = branch_of(&branch, in, "Branch", err);

	(void)ctx;
	if (rc)
		return rc;
	b = branch_entry(res, branch);
	if (!b)
		return dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'",
				  s_of(res, "name"), branch);
	*out = json_string(s_of(b, "id"));
	return 0;
}

/* Commits: [{Id, Metadata}] oldest first, as dotmesh listed snapshots;
 * the metadata holds message, author and timestamp (ns) beside the user's */
static int r_commits(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		     struct dm_err *err)
{
	json_t *commits = json_object_get(res, "commits");
	size_t n = json_array_size(commits);

	(void)ctx, (void)in, (void)err;
	*out = json_array();
	for (size_t i = n; i-- > 0;) {
		json_t *c = json_array_get(commits, i), *meta = json_object();
		json_t *user = json_object_get(c, "metadata");
		char ts[32];

		if (json_is_object(user))
			json_object_update(meta, user);
		snprintf(ts, sizeof(ts), "%lld", (long long)i_of(c, "time_ns"));
		json_object_set_new(meta, "message", json_string(s_of(c, "message")));
		json_object_set_new(meta, "author", json_string(s_of(c, "author")));
		json_object_set_new(meta, "timestamp", json_string(ts));
		json_array_append_new(
			*out, json_pack("{s:s, s:o}", "Id", s_of(c, "id"), "Metadata", meta));
	}
	return 0;
}

/* Branches: the branches but master (dotmesh's "clones"), sorted */
static int r_branches(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		      struct dm_err *err)
{
	json_t *b;
	size_t i;

	(void)ctx, (void)in, (void)err;
	*out = json_array();
	json_array_foreach(json_object_get(res, "branches"), i, b)
	{
		if (json_is_string(b) && strcmp(json_string_value(b), "master"))
			json_array_append(*out, b);
	}
	return 0;
}

/* Commit: the new commit's id */
static int r_commit_id(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		       struct dm_err *err)
{
	(void)ctx, (void)in, (void)err;
	*out = json_string(s_of(res, "id"));
	return 0;
}

/* Containers: [{Name, Id}] of the branch params name */
static int r_containers(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
			struct dm_err *err)
{
	const char *branch;
	int rc = branch_of(&branch, in, "Branch", err);

	(void)ctx;
	if (!rc)
		*out = containers_json(res, branch);
	return rc;
}

/* DeducePathToTopLevelFilesystem: the dot's id and name, and the branch
 * (a "clone") with its id; dm does not record the commit a branch
 * started from, so Origin.SnapshotId is "" */
static int r_deduce(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		    struct dm_err *err)
{
	const char *branch;
	json_t *clones = json_array(), *b;
	int rc = branch_of(&branch, in, "RemoteCloneName", err);

	(void)ctx;
	if (!rc && strcmp(branch, "master")) {
		b = branch_entry(res, branch);
		if (!b)
			rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'",
					s_of(res, "name"), branch);
		else
			json_array_append_new(
				clones,
				json_pack("{s:s, s:{s:s, s:s, s:s, s:{s:s, s:s}}}", "Name", branch,
					  "Clone", "TopLevelFilesystemId", s_of(res, "id"),
					  "FilesystemId", s_of(b, "id"), "Name", branch, "Origin",
					  "FilesystemId", s_of(res, "id"), "SnapshotId", ""));
	}
	if (rc) {
		json_decref(clones);
		return rc;
	}
	*out = json_pack("{s:s, s:{s:s, s:s}, s:o}", "TopLevelFilesystemId", s_of(res, "id"),
			 "TopLevelFilesystemName", "Namespace", s_of(res, "namespace"), "Name",
			 s_of(res, "name"), "Clones", clones);
	return 0;
}

/* TransferPollResult of a TRANSFER */
static int r_transfer(const struct dm_rpc_ctx *ctx, json_t *in, json_t *res, json_t **out,
		      struct dm_err *err)
{
	const char *state = s_of(res, "state"), *status, *remote = s_of(res, "remote");
	const char *at = strchr(remote, '@');
	struct dm_dot_name local, far;
	char user[DM_NAME_PART_MAX + 1] = "", peer[256];
	const char *message = s_of(res, "message");
	bool push = !strcmp(s_of(res, "direction"), "push");
	json_t *branches = json_object_get(res, "branches");
	const char *branch = json_array_size(branches) == 1
				     ? json_string_value(json_array_get(branches, 0))
				     : "";

	(void)ctx, (void)in, (void)err;
	if (!strcmp(state, "done"))
		status = "finished";
	else if (!strcmp(state, "failed"))
		status = "error";
	else if (!strcmp(state, "negotiating"))
		status = "starting";
	else
		status = "running";
	if (!strcmp(state, "failed"))
		message = s_of(json_object_get(res, "error"), "message");
	if (at)
		snprintf(user, sizeof(user), "%.*s", (int)(at - remote), remote);
	snprintf(peer, sizeof(peer), "%s", at ? at + 1 : remote);
	peer[strcspn(peer, ":")] = '\0';
	if (peer[0] == '[') /* [v6]:port */
		snprintf(peer, sizeof(peer), "%.*s", (int)strcspn(at + 2, "]"), at + 2);
	if (dm_dot_name_parse(&local, s_of(res, "dot"), NULL))
		memset(&local, 0, sizeof(local));
	if (dm_dot_name_parse(&far, s_of(res, "remote_dot"), NULL))
		memset(&far, 0, sizeof(far));
	if (branch && !strcmp(branch, "master"))
		branch = "";
	*out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
			 "s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:I, s:s}",
			 "TransferRequestId", s_of(res, "id"), "Peer", peer, "User", user, "ApiKey",
			 "", "Direction", push ? "push" : "pull", "LocalNamespace", local.ns,
			 "LocalName", local.name, "LocalBranchName", branch ? branch : "",
			 "RemoteNamespace", far.ns, "RemoteName", far.name, "RemoteBranchName",
			 branch ? branch : "", "FilesystemId", "", "InitiatorNodeId", "",
			 "PeerNodeId", "", "StartingCommit", "", "TargetCommit", "", "Index", 1,
			 "Total", 1, "Status", status, "NanosecondsElapsed", (json_int_t)0, "Size",
			 (json_int_t)i_of(res, "bytes_total"), "Sent",
			 (json_int_t)i_of(res, "bytes_done"), "Message", message);
	return 0;
}

/* ---- methods made of several of dm's ---------------------------------- */

/* Exists: the branch's id, or "" when there is no such dot or branch */
static int run_exists(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	json_t *params = NULL, *res = NULL;
	struct dm_err ignored;
	int rc = p_volume(ctx, in, &params, err);

	if (rc)
		return rc;
	rc = dm_rpc_call(ctx, "dots.show", params, &res, &ignored);
	json_decref(params);
	if (rc == DM_ENOTFOUND) {
		*out = json_string("");
		return 0;
	}
	if (rc)
		return dm_err_set(err, rc, "%s", ignored.msg);
	rc = r_lookup(ctx, in, res, out, &ignored);
	json_decref(res);
	if (rc == DM_ENOTFOUND) {
		*out = json_string("");
		rc = 0;
	} else if (rc) {
		dm_err_set(err, rc, "%s", ignored.msg);
	}
	return rc;
}

/* Get: the DotmeshVolume of a dotmesh id (a dot's master, or a branch) */
static int run_get(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	const char *id, *branch;
	json_t *dot = NULL;
	int rc = bare_id(&id, in, "FilesystemId", err);

	if (!rc)
		rc = find_id(ctx, id, &dot, &branch, err);
	if (!rc)
		*out = volume_json(dot, branch_entry(dot, branch));
	json_decref(dot);
	return rc;
}

/* Commits: the whole log, as dotmesh answered it: dots.log a page at a time
 * (its largest), then r_commits */
static int run_commits(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	json_t *params = NULL, *page = NULL, *all = json_array(), *res;
	int rc = p_volume_branch(ctx, in, &params, err);

	if (!rc)
		json_object_set_new(params, "limit", json_integer(1000));
	while (!rc) {
		json_decref(page);
		page = NULL;
		rc = dm_rpc_call(ctx, "dots.log", params, &page, err);
		if (rc)
			break;
		json_array_extend(all, json_object_get(page, "commits"));
		if (!json_is_true(json_object_get(page, "more")) ||
		    !json_is_string(json_object_get(page, "next")))
			break;
		json_object_set(params, "before", json_object_get(page, "next"));
	}
	json_decref(page);
	json_decref(params);
	res = json_pack("{s:o}", "commits", all);
	if (!rc)
		rc = r_commits(ctx, in, res, out, err);
	json_decref(res);
	return rc;
}

/* Branch: a new branch from SourceCommitId, or from SourceBranch's head */
static int run_branch(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	const char *source, *new_branch, *commit;
	json_t *res = NULL, *b, *params;
	int rc = dot_of(dot, in, "Namespace", "Name", err);

	if (!rc)
		rc = branch_of(&source, in, "SourceBranch", err);
	if (!rc)
		rc = str(&new_branch, in, "NewBranchName", err);
	if (!rc)
		rc = dm_branch_name_check(new_branch, err);
	if (!rc)
		rc = str(&commit, in, "SourceCommitId", err);
	if (!rc && !*commit) {
		rc = dm_rpc_call(ctx, "dots.show", json_pack("{s:s}", "dot", dot), &res, err);
		b = rc ? NULL : branch_entry(res, source);
		if (!rc && !b)
			rc = dm_err_set(err, DM_ENOTFOUND, "dot '%s' has no branch '%s'", dot,
					source);
		if (!rc && !*s_of(b, "head"))
			rc = dm_err_set(err, DM_ENOTFOUND, "branch '%s' of '%s' has no commits yet",
					source, dot);
		if (!rc)
			commit = s_of(b, "head"); /* lives as res */
	}
	if (!rc) {
		params = json_pack("{s:s, s:s, s:s}", "dot", dot, "branch", new_branch, "from",
				   commit);
		rc = dm_rpc_call(ctx, "dots.branch", params, out, err);
		json_decref(params);
	}
	json_decref(res);
	if (!rc) {
		json_decref(*out);
		*out = json_true();
	}
	return rc;
}

/* Procure: the dot (made when missing) and the path of its subdot */
static int run_procure(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX], *path = NULL;
	const char *subdot;
	json_t *params = NULL, *res = NULL;
	int rc = dot_of(dot, in, "Namespace", "Name", err);

	if (!rc)
		rc = str(&subdot, in, "Subdot", err);
	if (rc)
		return rc;
	if (!*subdot)
		subdot = "__default__";
	if (strcmp(subdot, "__root__") && strcmp(subdot, "__default__") &&
	    !dm_name_part_valid(subdot, strlen(subdot)))
		return dm_err_set(err, DM_EINVAL, "invalid subdot name '%s'", subdot);
	params = json_pack("{s:s}", "dot", dot);
	rc = dm_rpc_call(ctx, "dots.path", params, &res, err);
	if (rc == DM_ENOTFOUND && strstr(err->msg, "no such dot")) {
		rc = dm_rpc_call(ctx, "dots.create", params, &res, err);
		json_decref(res);
		res = NULL;
		if (!rc)
			rc = dm_rpc_call(ctx, "dots.path", params, &res, err);
	}
	json_decref(params);
	if (!rc && strcmp(subdot, "__root__"))
		rc = dm_dot_subdot_check(s_of(res, "path"), subdot, dot, true, err);
	if (!rc) {
		size_t len = strlen(s_of(res, "path")) + strlen(subdot) + 2;

		path = malloc(len);
		if (!path)
			rc = dm_err_set(err, DM_ENOMEM, "out of memory");
		else if (!strcmp(subdot, "__root__"))
			snprintf(path, len, "%s", s_of(res, "path"));
		else
			snprintf(path, len, "%s/%s", s_of(res, "path"), subdot);
	}
	if (!rc)
		*out = json_string(path);
	free(path);
	json_decref(res);
	return rc;
}

/* Transfer: a push or a pull run by this server, to or from Peer */
static int run_transfer(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	char local[DM_DOT_NAME_TEXT_MAX], far[DM_DOT_NAME_TEXT_MAX];
	const char *peer, *user, *key, *direction, *lbranch, *rbranch, *target, *ca;
	json_t *port = member(in, "Port"), *stash = member(in, "StashDivergence");
	json_t *remote = NULL, *params = NULL, *res = NULL;
	bool push;
	int rc = str(&peer, in, "Peer", err);

	if (!rc)
		rc = str(&user, in, "User", err);
	if (!rc)
		rc = str(&key, in, "ApiKey", err);
	if (!rc)
		rc = str(&direction, in, "Direction", err);
	if (!rc)
		rc = dot_of(local, in, "LocalNamespace", "LocalName", err);
	if (!rc)
		rc = dot_of(far, in, "RemoteNamespace", "RemoteName", err);
	if (!rc)
		rc = branch_of(&lbranch, in, "LocalBranchName", err);
	if (!rc)
		rc = branch_of(&rbranch, in, "RemoteBranchName", err);
	if (!rc)
		rc = str(&target, in, "TargetCommit", err);
	if (!rc)
		rc = str(&ca, in, "Ca", err); /* dm's own: the remote's CA (PEM) */
	if (rc)
		return rc;
	push = !strcmp(direction, "push");
	if (!push && strcmp(direction, "pull"))
		return dm_err_set(err, DM_EINVAL, "Direction must be \"push\" or \"pull\"");
	if (*target)
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "TargetCommit is not supported: dm moves a branch's head");
	if (strcmp(lbranch, rbranch))
		return dm_err_set(err, DM_EUNSUPPORTED,
				  "a branch goes under its own name: LocalBranchName '%s' and "
				  "RemoteBranchName '%s' differ",
				  lbranch, rbranch);
	if (port && !json_is_null(port) && !json_is_integer(port))
		return dm_err_set(err, DM_EINVAL, "parameter 'Port' must be a number");
	remote = json_pack("{s:s, s:I, s:s, s:s}", "host", peer, "port",
			   json_integer_value(port) ? json_integer_value(port) : DM_DEFAULT_PORT,
			   "user", user, "api_key", key);
	if (*ca)
		json_object_set_new(remote, "ca", json_string(ca));
	params = json_pack("{s:o, s:s, s:s, s:s, s:b}", "remote", remote, "dot", local,
			   "remote_dot", far, "branch", lbranch, "stash", json_is_true(stash));
	if (!push) {
		/* a pull into a dot that is not here is a clone (every branch) */
		rc = dm_rpc_call(ctx, "dots.show", json_pack("{s:s}", "dot", local), &res, err);
		json_decref(res);
		if (rc == DM_ENOTFOUND) {
			json_object_set_new(params, "clone", json_true());
			json_object_del(params, "branch");
			rc = 0;
		}
	}
	if (!rc)
		rc = dm_rpc_call(ctx, push ? "transfers.push" : "transfers.pull", params, &res,
				 err);
	json_decref(params);
	if (!rc)
		*out = json_string(s_of(res, "id"));
	json_decref(res);
	return rc;
}

/* AddCollaborator, RemoveCollaborator: by the dot's (master's) id */
static int collaborator(const struct dm_rpc_ctx *ctx, json_t *in, const char *method, json_t **out,
			struct dm_err *err)
{
	const char *id, *user, *branch;
	char dot[DM_DOT_NAME_TEXT_MAX];
	json_t *d = NULL, *params, *res = NULL;
	int rc = str(&id, in, "MasterBranchID", err);

	if (!rc)
		rc = str(&user, in, "Collaborator", err);
	if (!rc)
		rc = find_id(ctx, id, &d, &branch, err);
	if (!rc && strcmp(branch, "master"))
		rc = dm_err_set(err, DM_EINVAL,
				"'%s' is branch '%s': name the dot by its master "
				"branch's id",
				id, branch);
	if (rc) {
		json_decref(d);
		return rc;
	}
	snprintf(dot, sizeof(dot), "%s/%s", s_of(d, "namespace"), s_of(d, "name"));
	json_decref(d);
	params = json_pack("{s:s, s:s}", "dot", dot, "user", user);
	rc = dm_rpc_call(ctx, method, params, &res, err);
	json_decref(params);
	json_decref(res);
	if (!rc)
		*out = json_true();
	return rc;
}

static int run_add_collaborator(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
				struct dm_err *err)
{
	return collaborator(ctx, in, "dots.add_collaborator", out, err);
}

static int run_remove_collaborator(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
				   struct dm_err *err)
{
	return collaborator(ctx, in, "dots.remove_collaborator", out, err);
}

/* ForceBranchMasterById: Master "" is this node */
static int run_force_master(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
			    struct dm_err *err)
{
	const char *id, *node, *branch;
	char dot[DM_DOT_NAME_TEXT_MAX];
	json_t *d = NULL, *params, *res = NULL, *status = NULL;
	int rc = str(&id, in, "FilesystemId", err);

	if (!rc)
		rc = str(&node, in, "Master", err);
	if (!rc && !*node) {
		rc = dm_rpc_call(ctx, "cluster.status", NULL, &status, err);
		node = s_of(status, "node");
	}
	if (!rc)
		rc = find_id(ctx, id, &d, &branch, err);
	if (!rc) {
		snprintf(dot, sizeof(dot), "%s/%s", s_of(d, "namespace"), s_of(d, "name"));
		params = json_pack("{s:s, s:s, s:s}", "dot", dot, "branch", branch, "node", node);
		rc = dm_rpc_call(ctx, "cluster.set_master", params, &res, err);
		json_decref(params);
	}
	json_decref(d);
	json_decref(res);
	json_decref(status);
	if (!rc)
		*out = json_true();
	return rc;
}

/* Fork: a fork of the dot whose master's id is MasterBranchID, as
 * ForkNamespace/ForkName; the fork's id */
static int run_fork(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out, struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX], fork[DM_DOT_NAME_TEXT_MAX];
	const char *id, *branch;
	json_t *d = NULL, *params, *res = NULL;
	int rc = str(&id, in, "MasterBranchID", err);

	if (!rc)
		rc = dot_of(fork, in, "ForkNamespace", "ForkName", err);
	if (!rc)
		rc = find_id(ctx, id, &d, &branch, err);
	if (!rc && strcmp(branch, "master"))
		rc = dm_err_set(err, DM_EINVAL,
				"'%s' is branch '%s': a fork is of a dot, named "
				"by its master branch's id",
				id, branch);
	if (!rc) {
		snprintf(dot, sizeof(dot), "%s/%s", s_of(d, "namespace"), s_of(d, "name"));
		params = json_pack("{s:s, s:s}", "dot", dot, "fork", fork);
		rc = dm_rpc_call(ctx, "dots.fork", params, &res, err);
		json_decref(params);
	}
	if (!rc)
		*out = json_string(s_of(res, "id"));
	json_decref(res);
	json_decref(d);
	return rc;
}

/* MountCommit: a read-only copy of CommitId of the dot (or branch) whose id
 * is FilesystemId, held as "dotmesh:COMMIT" (until dots.unmount_commit
 * with that holder: dotmesh never let go of them either); its path */
static int run_mount_commit(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
			    struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX], holder[DM_COMMIT_ID_LEN_MAX + 16];
	const char *id, *commit, *branch;
	json_t *d = NULL, *params, *res = NULL;
	int rc = str(&id, in, "FilesystemId", err);

	if (!rc)
		rc = str(&commit, in, "CommitId", err);
	if (!rc)
		rc = find_id(ctx, id, &d, &branch, err);
	if (!rc) {
		snprintf(dot, sizeof(dot), "%s/%s", s_of(d, "namespace"), s_of(d, "name"));
		snprintf(holder, sizeof(holder), "dotmesh:%.128s", commit);
		params = json_pack("{s:s, s:s, s:s}", "dot", dot, "commit", commit, "holder",
				   holder);
		rc = dm_rpc_call(ctx, "dots.mount_commit", params, &res, err);
		json_decref(params);
	}
	if (!rc)
		*out = json_string(s_of(res, "path"));
	json_decref(res);
	json_decref(d);
	return rc;
}

/* CheckNameIsValid: "" for a valid name and branch, else why not */
static int run_check_name(const struct dm_rpc_ctx *ctx, json_t *in, json_t **out,
			  struct dm_err *err)
{
	char dot[DM_DOT_NAME_TEXT_MAX];
	const char *branch;
	struct dm_err why;

	(void)ctx, (void)err;
	dm_err_clear(&why);
	if (dot_of(dot, in, "Namespace", "Name", &why) || branch_of(&branch, in, "Branch", &why))
		*out = json_string(why.msg);
	else
		*out = json_string("");
	return 0;
}

/* ---- the one table ---------------------------------------------------- */

/* dotmesh's params (an array of one is that one, null is {}), the dm call
 * the alias's row names, and dotmesh's result */
static int alias_call(const struct dm_rpc_ctx *ctx, json_t *params, json_t **result,
		      struct dm_err *err)
{
	const struct alias *a = (const struct alias *)ctx->method; /* its first member */
	json_t *in = params, *dm_params = NULL, *res = NULL;
	int rc;

	if (json_is_array(in) && json_array_size(in) == 1)
		in = json_array_get(in, 0);
	if (json_is_null(in))
		in = NULL;
	if (in && !json_is_object(in) && !json_is_string(in))
		return dm_err_set(err, DM_EINVAL, "params of '%s' must be an object",
				  ctx->method->name);
	if (a->run)
		return a->run(ctx, in, result, err);
	if (a->params && (rc = a->params(ctx, in, &dm_params, err)))
		return rc;
	rc = dm_rpc_call(ctx, a->dm, dm_params, &res, err);
	json_decref(dm_params);
	if (!rc)
		rc = a->result(ctx, in, res, result, err);
	json_decref(res);
	return rc;
}

#define ALIAS(name, dm, params, result)                                                            \
	{                                                                                          \
		{"DotmeshRPC." name, alias_call, false, 0}, dm, params, result, NULL               \
	}
#define MADE_OF(name, run)                                                                         \
	{                                                                                          \
		{"DotmeshRPC." name, alias_call, false, 0}, NULL, NULL, NULL, run                  \
	}

/* dotmesh's method, the dm method it is (or what it is made of), and how
 * params and results are translated; docs/api.md has the same table. Each
 * dm call has its own method's deadline (dm_rpc_call). */
static const struct alias aliases[] = {
	ALIAS("Ping", "server.ping", NULL, r_true),
	ALIAS("Version", "server.version", NULL, r_version),
	ALIAS("CurrentUser", "users.whoami", NULL, r_user),
	ALIAS("List", "dots.list", NULL, r_list),
	ALIAS("ListWithContainers", "dots.list", NULL, r_list_containers),
	MADE_OF("Get", run_get),
	ALIAS("Lookup", "dots.show", p_volume, r_lookup),
	MADE_OF("Exists", run_exists),
	ALIAS("Create", "dots.create", p_volume, r_true),
	ALIAS("Delete", "dots.delete", p_volume, r_true),
	ALIAS("Commit", "dots.commit", p_commit, r_commit_id),
	MADE_OF("Commits", run_commits),
	ALIAS("Branches", "dots.branches", p_volume, r_branches),
	MADE_OF("Branch", run_branch),
	ALIAS("Rollback", "dots.reset", p_rollback, r_true),
	MADE_OF("Procure", run_procure),
	ALIAS("SwitchContainers", "dots.checkout", p_switch, r_true),
	ALIAS("Containers", "dots.show", p_volume, r_containers),
	MADE_OF("Transfer", run_transfer),
	ALIAS("GetTransfer", "transfers.show", p_transfer_id, r_transfer),
	MADE_OF("AddCollaborator", run_add_collaborator),
	MADE_OF("RemoveCollaborator", run_remove_collaborator),
	MADE_OF("ForceBranchMasterById", run_force_master),
	MADE_OF("Fork", run_fork),
	MADE_OF("MountCommit", run_mount_commit),
	ALIAS("DeducePathToTopLevelFilesystem", "dots.show", p_volume_deduce, r_deduce),
	MADE_OF("CheckNameIsValid", run_check_name),
};

const struct dm_rpc_method *dm_rpc_dotmesh_find(const char *name)
{
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (!strcmp(aliases[i].method.name, name))
			return &aliases[i].method;
	return NULL;
}
