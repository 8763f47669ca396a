/*
 * forward.c - serving a request on the node that masters its branch (see
 * forward.h).
 *
 * Invariant: a request is forwarded at most once: the master serves what
 * it masters, and a node that is not (any longer) the master forwards
 * again only by the record it reads then; a request that arrives on
 * behalf of a caller is served or refused like any other.
 */
#include "server/cluster/forward.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "kv/kv.h"
#include "remote/remote.h"
#include "server/cluster/cluster.h"
#include "server/cluster/nodecred.h"
#include "server/dots/dot.h"
#include "server/dots/registry.h"
#include "server/transfers/transfer.h"
#include "sync/walk.h"
#include "util/curl.h"
#include "util/log.h"

#include "util/banned.h"

/* How long a handoff may take: the old master's commit, then the pull. */
#define HANDOFF_MS (3600 * 1000)
/* Pulls a handoff tries before it gives up on the old master's commits. */
#define HANDOFF_PULLS 3

int dm_forward_master(const struct dm_cluster_env *env, char *master_out, const char *dot_id,
		      const char *branch, struct dm_err *err)
{
	char key[256];
	struct dm_kv_kv kv;
	int rc;

	master_out[0] = '\0';
	if (!env->kv_root[0])
		return 0;
	snprintf(key, sizeof(key), DM_KV_MASTERS "%s/%s", dot_id, branch);
	dm_kv_kv_init(&kv);
	rc = dm_kv_get(env->kv, &kv, key, err);
	if (rc == DM_ENOTFOUND)
		rc = 0;
	else if (!rc && kv.value_len == DM_UUID_LEN)
		memcpy(master_out, kv.value, DM_UUID_LEN + 1);
	else if (!rc)
		rc = dm_err_set(err, DM_ECORRUPT, "the master record '%s' is malformed", key);
	dm_kv_kv_release(&kv);
	return rc;
}

/* Where node id (the master of branch of dot shown) serves its API;
 * DM_EUNAVAILABLE naming what to do when the node is down. */
static int node_address(const struct dm_cluster_env *env, char *host, size_t size, int *port,
			const char *id, const char *branch, const char *shown, struct dm_err *err)
{
	struct dm_cluster_node node;
	int rc = dm_cluster_node(env->kv, &node, id, err);

	if (!rc && !node.alive)
		rc = dm_err_set(err, DM_EUNAVAILABLE,
				"branch '%s' of dot '%s' is mastered by node %s, which is down; "
				"move it to a live node with 'dm dot set-master %s %s NODE'",
				branch, shown, id, shown, branch);
	if (!rc && dm_cluster_address_parse(host, size, port, node.address))
		rc = dm_err_set(err, DM_ECORRUPT, "node %s has no valid address ('%s')", id,
				node.address);
	return rc;
}

/* A client for node id's API as this node (on behalf of user, or NULL);
 * DM_EUNAVAILABLE naming what to do when the node is down. */
static int node_client(const struct dm_cluster_env *env, struct dm_client **out, char *host,
		       size_t size, int *port, const char *id, const char *user, const char *branch,
		       const char *shown, struct dm_err *err)
{
	struct dm_curl_node cred;
	struct dm_remote remote;
	char label[32];
	int rc = node_address(env, host, size, port, id, branch, shown, err);

	if (rc)
		return rc;
	snprintf(label, sizeof(label), "node %.8s", id);
	memset(&remote, 0, sizeof(remote));
	remote.name = label;
	remote.host = host;
	remote.port = *port;
	remote.on_behalf = user;
	remote.ca = env->ca;
	remote.node = &cred;
	rc = dm_cluster_node_cred(env, &cred, id, err);
	return rc ? rc : dm_client_new(out, &remote, err);
}

/*
 * The master of (dot_id, branch) into master when it is another node: sets
 * *forwarded and returns 0, or DM_ECONFLICT ("... `again`") for a request
 * another node forwarded here already (the records moved meanwhile; never
 * twice). With *forwarded false the request is served here.
 */
static int other_master(char *master, const struct dm_cluster_env *env,
			const struct dm_caller *caller, const char *dot_id, const char *shown,
			const char *branch, const char *again, bool *forwarded, struct dm_err *err)
{
	int rc;

	*forwarded = false;
	rc = dm_forward_master(env, master, dot_id, branch, err);
	if (rc || !master[0] || !strcmp(master, env->node_id))
		return rc;
	*forwarded = true;
	if (caller->forwarded)
		return dm_err_set(err, DM_ECONFLICT,
				  "node %s does not master branch '%s' of dot '%s' (node %s does "
				  "now); %s again",
				  env->node_id, branch, shown, master, again);
	return 0;
}

int dm_forward_to_master(const struct dm_cluster_env *env, const struct dm_caller *caller,
			 int deadline_ms, const char *method, json_t *params, const char *dot_id,
			 const char *shown, const char *branch, json_t **result, bool *forwarded,
			 struct dm_err *err)
{
	char master[DM_UUID_LEN + 1], host[256];
	struct dm_client *c = NULL;
	json_t *copy;
	int port, rc;

	rc = other_master(master, env, caller, dot_id, shown, branch, "try", forwarded, err);
	if (rc || !*forwarded)
		return rc;
	rc = node_client(env, &c, host, sizeof(host), &port, master, caller->user, branch, shown,
			 err);
	if (rc)
		return rc;
	dm_client_set_timeout(c, (deadline_ms + 999) / 1000);
	copy = json_deep_copy(params);
	json_object_set_new(copy, "branch", json_string(branch));
	rc = dm_client_call(c, method, copy, result, err);
	json_decref(copy);
	dm_client_free(c);
	if (rc == DM_EUNAVAILABLE)
		dm_err_prefix(err, "branch '%s' of dot '%s' is mastered by node %s", branch, shown,
			      master);
	return rc;
}

/* ---- a forwarded HTTP request ---- */

struct http_call {
	int fd;
	const char *want;
	struct dm_forward_reply *out;
};

static size_t http_read(char *buf, size_t size, size_t n, void *ctx)
{
	const struct http_call *h = ctx;
	ssize_t got = read(h->fd, buf, size * n);

	return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
}

static size_t http_write(char *buf, size_t size, size_t n, void *ctx)
{
	struct http_call *h = ctx;
	size_t len = size * n, room = DM_FORWARD_REPLY_MAX - h->out->body.len;

	dm_buf_add(&h->out->body, buf, len < room ? len : room); /* the rest is dropped */
	return len;
}

/* Copies the value of header `name` of line (len bytes) into out. */
static void header_value(char *out, size_t size, const char *name, const char *line, size_t len)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
		return;
	line += n + 1;
	len -= n + 1;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' '))
		len--;
	snprintf(out, size, "%.*s", (int)len, line);
}

static size_t http_header(char *buf, size_t size, size_t n, void *ctx)
{
	struct http_call *h = ctx;

	if (h->want)
		header_value(h->out->header, sizeof(h->out->header), h->want, buf, size * n);
	header_value(h->out->ctype, sizeof(h->out->ctype), "Content-Type", buf, size * n);
	return size * n;
}

int dm_forward_http(const struct dm_cluster_env *env, const struct dm_caller *caller,
		    const char *dot_id, const char *shown, const char *branch, const char *method,
		    const char *path, const char *header, int body_fd, uint64_t body_len,
		    const char *want, int deadline_ms, struct dm_forward_reply *out,
		    bool *forwarded, struct dm_err *err)
{
	char master[DM_UUID_LEN + 1], host[256], behalf[300], errbuf[CURL_ERROR_SIZE];
	struct http_call h = {body_fd, want, out};
	struct dm_curl_node cred;
	struct curl_slist *headers = NULL;
	struct dm_buf url = DM_BUF_INIT;
	CURL *e = NULL;
	CURLcode cc;
	int port, rc;

	memset(out, 0, sizeof(*out));
	dm_buf_init(&out->body, DM_FORWARD_REPLY_MAX);
	rc = other_master(master, env, caller, dot_id, shown, branch, "try", forwarded, err);
	if (rc || !*forwarded)
		return rc;
	rc = node_address(env, host, sizeof(host), &port, master, branch, shown, err);
	if (!rc)
		rc = dm_cluster_node_cred(env, &cred, master, err);
	if (!rc)
		rc = dm_curl_global_init(err);
	if (!rc && dm_buf_addf(&url, "%s://%s:%d%s", env->ca ? "https" : "http", host, port, path))
		rc = dm_err_set(err, DM_ENOMEM, "out of memory for a URL");
	if (!rc && !(e = curl_easy_init()))
		rc = dm_err_set(err, DM_ENOMEM, "cannot make an HTTP request to node %s", master);
	if (rc)
		goto done;
	snprintf(behalf, sizeof(behalf), "%s: %s", DM_ON_BEHALF_HEADER, caller->user);
	headers = curl_slist_append(headers, behalf);
	headers = curl_slist_append(headers, "Expect:");
	if (header)
		headers = curl_slist_append(headers, header);
	dm_curl_setup(e, &(const struct dm_curl_request){
				 .url = (const char *)url.data,
				 .headers = headers,
				 .agent = "dmd/" DM_VERSION,
				 .connect_timeout = DM_CLIENT_CONNECT_TIMEOUT,
				 .errbuf = errbuf,
				 .ca_pem = env->ca,
				 .node = &cred,
			 });
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)deadline_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &h);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &h);
	if (body_fd >= 0) {
		if (lseek(body_fd, 0, SEEK_SET) < 0) {
			rc = dm_err_errno(err, errno, "cannot read the body to forward");
			goto done;
		}
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, http_read);
		curl_easy_setopt(e, CURLOPT_READDATA, &h);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
	}
	cc = curl_easy_perform(e);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		rc = dm_err_set(err, DM_ETIMEOUT,
				"node %s, master of branch '%s' of dot '%s', did not answer within "
				"%d s",
				master, branch, shown, deadline_ms / 1000);
	else if (cc != CURLE_OK)
		rc = dm_err_set(err, DM_EUNAVAILABLE,
				"cannot reach node %s, master of branch '%s' of dot '%s': %s",
				master, branch, shown, errbuf[0] ? errbuf : curl_easy_strerror(cc));
	else
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
done:
	curl_slist_free_all(headers);
	if (e)
		curl_easy_cleanup(e);
	dm_buf_release(&url);
	return rc;
}

int dm_forward_pull_begin(const struct dm_cluster_env *env, const char *host, int port,
			  const char *node_id, const struct dm_dot_name *name, const char *branch,
			  char *xid_out, struct dm_err *err)
{
	struct dm_transfer_spec spec;
	struct dm_curl_node cred;
	char label[32];
	int rc = dm_cluster_node_cred(env, &cred, node_id, err);

	if (rc)
		return rc;
	snprintf(label, sizeof(label), "node %.8s", node_id);
	memset(&spec, 0, sizeof(spec));
	spec.direction = DM_TRANSFER_PULL;
	spec.host = host;
	spec.port = port;
	spec.user = "node";
	spec.api_key = "";
	spec.ca = env->ca;
	spec.node = &cred;
	spec.remote_name = label;
	spec.dot = *name;
	spec.remote_dot = *name;
	spec.branch = branch;
	spec.clone = branch == NULL;
	spec.stash = true; /* a copy that moved on alone keeps its commits aside */
	spec.caller = DM_CLUSTER_ADMIN_USER;
	spec.trusted = true; /* the copy strips what its master strips (refs says) */
	return dm_transfers_begin(env->transfers, &spec, xid_out, err);
}

/* The head of branch in this node's copy of dot_id, into out. */
static void local_head(const struct dm_cluster_env *env, char *out, size_t size, const char *dot_id,
		       const char *branch)
{
	struct dm_registry_snap *snap = dm_registry_snapshot(env->registry);
	const struct dm_registry_entry *e = dm_registry_find_id(snap, dot_id);

	dm_dot_handle_head(out, size, e ? e->dot : NULL, branch);
	dm_registry_snap_unref(snap);
}

int dm_forward_take_master(const struct dm_cluster_env *env, const char *dot_id, const char *shown,
			   const char *branch, struct dm_err *err)
{
	char master[DM_UUID_LEN + 1], host[256], xid[DM_UUID_LEN + 1];
	char mine[DM_COMMIT_ID_LEN_MAX + 1];
	struct dm_client *c = NULL;
	json_t *res = NULL, *params;
	const char *head;
	int port, rc = dm_forward_master(env, master, dot_id, branch, err);

	if (rc || !master[0] || !strcmp(master, env->node_id))
		return rc;
	rc = node_client(env, &c, host, sizeof(host), &port, master, NULL, branch, shown, err);
	if (rc)
		return rc;
	dm_client_set_timeout(c, HANDOFF_MS / 1000);
	params = json_pack("{s:s, s:s, s:s}", "dot", shown, "branch", branch, "to", env->node_id);
	rc = dm_client_call(c, "cluster.handoff", params, &res, err);
	json_decref(params);
	dm_client_free(c);
	if (rc)
		return dm_err_prefix(err, "cannot take branch '%s' of '%s' over from node %s",
				     branch, shown, master);
	head = json_string_value(json_object_get(res, "head"));
	/* the old master has what we lack: fetch it before anything runs. The
	 * replicator may be pulling the same commits (it saw the old master's
	 * last commit before the branch moved): whichever lands first, the
	 * head is what counts. */
	for (int attempt = 0; head && head[0]; attempt++) {
		struct dm_dot_name name;

		local_head(env, mine, sizeof(mine), dot_id, branch);
		if (!strcmp(head, mine)) {
			rc = 0;
			break;
		}
		if (attempt == HANDOFF_PULLS) {
			if (!rc)
				rc = dm_err_set(err, DM_ECONFLICT,
						"this node's copy is at '%s', not '%s'", mine,
						head);
			dm_err_prefix(err,
				      "took branch '%s' of '%s' over from node %s but cannot "
				      "fetch its last commits",
				      branch, shown, master);
			break;
		}
		rc = dm_dot_name_parse(&name, shown, err);
		if (!rc)
			rc = dm_forward_pull_begin(env, host, port, master, &name, branch, xid,
						   err);
		if (!rc)
			rc = dm_transfers_wait(env->transfers, xid, HANDOFF_MS, err);
		if (rc) {
			struct timespec ts = {0, 200 * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	if (!rc)
		dm_info("handoff: this node masters branch '%s' of '%s' now (from node %s)", branch,
			shown, master);
	json_decref(res);
	return rc;
}

/* ---- a push that reached a node that does not master the branch ---- */

static int peer_missing(void *ctx, const dm_oid *ids, size_t n, struct dm_buf *out,
			struct dm_err *err)
{
	return dm_remote_missing(ctx, ids, n, out, err);
}

static int peer_put(void *ctx, const struct dm_pack_rec *rec, const void *bytes, struct dm_err *err)
{
	return dm_remote_put_add(ctx, rec, bytes, err);
}

static int peer_sync(void *ctx, struct dm_err *err)
{
	return dm_remote_put_sync(ctx, err);
}

static void walk_acked(void *ctx, uint64_t objects, uint64_t bytes)
{
	dm_sync_acked(ctx, objects, bytes);
}

int dm_forward_update(const struct dm_cluster_env *env, const struct dm_caller *caller, json_t *doc,
		      const char *dot_id, const char *shown, const char *branch,
		      const dm_oid *commits, size_t n, json_t **result, bool *forwarded,
		      struct dm_err *err)
{
	char master[DM_UUID_LEN + 1], host[256];
	struct dm_cluster_node node;
	struct dm_curl_node cred;
	struct dm_remote_addr addr;
	struct dm_remote_conn *conn = NULL;
	struct dm_sync_walk walk;
	int port, rc;

	rc = other_master(master, env, caller, dot_id, shown, branch, "push", forwarded, err);
	if (rc || !*forwarded)
		return rc;
	rc = dm_cluster_node(env->kv, &node, master, err);
	if (!rc && !node.alive)
		rc = dm_err_set(err, DM_EUNAVAILABLE,
				"branch '%s' of dot '%s' is mastered by node %s, which is down; "
				"push again once it is up, or move the branch with 'dm dot "
				"set-master %s %s NODE' on the cluster",
				branch, shown, master, shown, branch);
	if (!rc && dm_cluster_address_parse(host, sizeof(host), &port, node.address))
		rc = dm_err_set(err, DM_ECORRUPT, "node %s has no valid address", master);
	if (!rc)
		rc = dm_cluster_node_cred(env, &cred, master, err);
	if (rc)
		return rc;
	addr = (struct dm_remote_addr){host, port, NULL, NULL, caller->user, env->ca, &cred};
	memset(&walk, 0, sizeof(walk));
	walk.store = env->store;
	walk.dot_id = dot_id;
	rc = dm_remote_open(&conn, &addr, err);
	if (!rc)
		rc = dm_remote_hello(conn, err);
	if (!rc) {
		walk.peer = (struct dm_sync_peer){conn, peer_missing, peer_put, peer_sync, NULL};
		dm_remote_put_begin(conn, dot_id, walk_acked, &walk);
		rc = dm_sync_push(&walk, commits, n, err);
	}
	if (!rc)
		rc = dm_remote_update(conn, doc, result, err);
	dm_remote_free(conn);
	if (rc)
		dm_err_prefix(err, "node %s, the master of branch '%s'", master, branch);
	return rc;
}
